use super::*;

#[test]
fn sizes_parse() {
    let ok = [
        ("65536", 65536),
        ("64k", 65536),
        ("64KiB", 65536),
        ("4G", 4 << 30),
        ("4.7GB", 4_700_000_000),
        ("1.5g", 3 << 29),
        ("700MB", 700_000_000),
        ("fat32", 4_294_967_295),
        ("DVD", 4_690_000_000),
        ("bd25", 24_900_000_000),
    ];
    for (t, want) in ok {
        assert_eq!(parse_volume_size(t), Ok(want), "{t}");
    }
    for t in ["", "x", "4Q", "1.2.3G", "-5G", "99999999999999999999T"] {
        assert!(
            matches!(parse_volume_size(t), Err(VolumeError::BadSize { .. })),
            "{t}"
        );
    }
    assert!(matches!(
        parse_volume_size("1000"),
        Err(VolumeError::TooSmall { .. })
    ));
}

#[test]
fn plain_when_it_fits_and_no_parity() {
    assert_eq!(Geometry::plan(1000, 1 << 20, 0), Ok(None));
    assert_eq!(Geometry::plan(1 << 20, 1 << 20, 0), Ok(None));
    assert!(Geometry::plan(1000, 1 << 20, 1).unwrap().is_some());
}

#[test]
fn every_volume_fits_its_size_and_covers_the_bundle() {
    for (bundle, size, parity) in [
        (1_000_000u64, 65536u64, 1u32),
        (5 << 30, u64::from(u32::MAX), 1),
        (2 << 30, 64 << 20, 2),
        (200_001, 65536, 0),
        (123, 65536, 3),
        (40 << 30, 4_690_000_000, 2),
    ] {
        let g = Geometry::plan(bundle, size, parity).unwrap().unwrap();
        g.check().unwrap();
        let covered: u64 = (0..g.data).map(|i| g.payload_len(i)).sum();
        assert_eq!(covered, bundle);
        for i in 0..g.volumes() {
            assert!(g.file_len(i) <= size, "{bundle} {size}: volume {i}");
            assert!(g.units(i) <= g.stripes());
        }
        assert!(u64::from(g.volumes()) * u64::from(g.unit) <= STRIPE_BUDGET);
        assert_eq!(g.locate(bundle - 1).0, g.data - 1);
    }
    assert!(matches!(
        Geometry::plan(1 << 30, 65536, 1),
        Err(VolumeError::TooMany { .. })
    ));
}

fn crcs(g: &Geometry, i: u32) -> Vec<u32> {
    (0..g.units(i)).map(|k| k as u32 * 7 + i).collect()
}

fn sample_desc() -> SetDescriptor {
    let g = Geometry::plan(300_000, 65536, 2).unwrap().unwrap();
    SetDescriptor {
        geometry: g,
        volumes: (0..g.volumes())
            .map(|i| table_digest(&crcs(&g, i)))
            .collect(),
    }
}

#[test]
fn trailer_round_trips_and_every_bit_flip_is_caught() {
    let d = sample_desc();
    let g = d.geometry;
    let crcs = crcs(&g, 1);
    let t = encode_trailer(&d, 1, &crcs);
    let file_len = g.payload_len(1) + t.len() as u64;
    assert_eq!(file_len, g.file_len(1));
    let parse = |t: &[u8]| -> Result<VolumeTrailer, VolumeError> {
        let f = Footer::decode(&t[t.len() - FOOTER_LEN..])?;
        let (ds, de) = f
            .descriptor_range(t.len() as u64)
            .ok_or(VolumeError::NotAVolume)?;
        let desc = &t[ds as usize..de as usize];
        VolumeTrailer::check(f.clone(), desc, &t[..ds as usize], file_len)
    };
    let v = parse(&t).unwrap();
    assert_eq!(v.crcs, crcs);
    assert_eq!(v.descriptor, d);
    assert_eq!(v.index(), 1);
    for bit in 0..t.len() * 8 {
        let mut b = t.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        assert!(
            parse(&b).is_err(),
            "bit {bit} of the trailer went unnoticed"
        );
    }
    assert!(matches!(
        VolumeTrailer::check(
            Footer::decode(&t[t.len() - FOOTER_LEN..]).unwrap(),
            &t[crcs.len() * 4..t.len() - FOOTER_LEN],
            &t[..crcs.len() * 4],
            file_len - 1
        ),
        Err(VolumeError::Length { .. })
    ));
}

#[test]
fn unit_crcs_do_not_depend_on_chunking() {
    let data: Vec<u8> = (0..20_000u32).map(|i| (i * 13) as u8).collect();
    let whole: Vec<u32> = data.chunks(4096).map(crc32).collect();
    for step in [1, 7, 512, 4096, 65536] {
        let mut u = UnitCrcs::new(4096);
        for c in data.chunks(step) {
            u.update(c);
        }
        assert_eq!(u.finish(), whole, "{step}");
    }
}

#[test]
fn names() {
    assert_eq!(volume_file_name("app-2.ddiff", 0), "app-2.ddiff.001");
    assert_eq!(
        parse_volume_file_name("app-2.ddiff.012"),
        Some(("app-2.ddiff", 11))
    );
    assert_eq!(parse_volume_file_name("app-2.ddiff"), None);
    assert_eq!(parse_volume_file_name("x.000"), None);
    assert_eq!(parse_volume_file_name("x.1234"), None);
}

#[test]
fn the_set_most_volumes_name_is_chosen_and_a_tie_refused() {
    let a = sample_desc();
    let mut b = sample_desc();
    b.volumes[0] = Digest::sha256(b"other");
    let tr = |d: &SetDescriptor, i: u32| {
        let t = encode_trailer(d, i, &crcs(&d.geometry, i));
        let f = Footer::decode(&t[t.len() - FOOTER_LEN..]).unwrap();
        let n = t.len() - FOOTER_LEN - f.descriptor_len as usize;
        VolumeTrailer::check(
            f,
            &t[n..t.len() - FOOTER_LEN],
            &t[..n],
            d.geometry.payload_len(i) + t.len() as u64,
        )
        .unwrap()
    };
    let ts = [tr(&a, 0), tr(&a, 1), tr(&b, 1)];
    assert_eq!(choose_set(&ts), Ok(a.digest()));
    assert!(matches!(
        choose_set(&ts[1..]),
        Err(VolumeError::AmbiguousSet { sets: 2, each: 1 })
    ));
    assert_eq!(choose_set(&[]), Err(VolumeError::NoSet));
}

#[test]
fn recoverable_while_no_stripe_has_more_bad_units_than_parity() {
    let g = Geometry::plan(1_000_000, 65536, 2).unwrap().unwrap();
    let n = g.volumes() as usize;
    let good = Observed::Read { bad_units: vec![] };
    let mut obs = vec![good.clone(); n];
    assert!(assess(&g, &obs).recoverable);
    obs[0] = Observed::Missing;
    obs[3] = Observed::Unreadable {
        problem: VolumeError::NotAVolume,
    };
    let a = assess(&g, &obs);
    assert!(a.recoverable);
    assert_eq!(a.bad_volumes().collect::<Vec<_>>(), [0, 3]);
    // A third bad unit in stripe 2 loses that stripe only.
    obs[5] = Observed::Read { bad_units: vec![2] };
    let a = assess(&g, &obs);
    assert!(!a.recoverable);
    assert_eq!(a.lost_stripes, 1);
    // A volume not read counts as good (a load that did not need its parity).
    obs[5] = Observed::NotRead;
    assert!(assess(&g, &obs).recoverable);
}

fn read_trailer(file: &[u8]) -> Result<VolumeTrailer, VolumeError> {
    let mut r = TrailerReader::new(file.len() as u64);
    let mut reads = 0;
    while let Some((a, b)) = r.need() {
        r.give(&file[a as usize..b as usize]);
        reads += 1;
        assert!(reads <= 3);
    }
    r.finish()
}

/// The sans-IO trailer read, the set's arrangement and the stripe rebuild that the CLI
/// and the page share, here also on 32-bit wasm (tests/wasm/core-tests.sh).
#[test]
fn trailers_arrangement_and_stripe_rebuild() {
    let bundle: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let files = crate::synth_bundle::volume_set(&bundle, 65536, 2).unwrap();
    let trailers: Vec<_> = files.iter().map(|f| read_trailer(f)).collect();
    let g = trailers[0].as_ref().unwrap().descriptor.geometry;
    assert_eq!(files.len() as u32, g.volumes());
    for (i, t) in trailers.iter().enumerate() {
        assert_eq!(t.as_ref().unwrap().index(), i as u32);
    }
    // Short, cut and garbage files have no trailer; a cut one named like a volume is
    // that volume, damaged.
    assert_eq!(read_trailer(b"tiny"), Err(VolumeError::NotAVolume));
    let cut = &files[1][..files[1].len() - 10];
    assert!(read_trailer(cut).is_err());
    let names: Vec<String> = (0..files.len() as u32)
        .map(|i| volume_file_name("app.ddiff", i))
        .collect();
    let cut_err = read_trailer(cut).unwrap_err();
    let other_files = crate::synth_bundle::volume_set(&bundle[1..], 65536, 2).unwrap();
    let other = read_trailer(&other_files[2]).unwrap();
    let mut cands: Vec<(Option<&str>, Result<&VolumeTrailer, &VolumeError>)> = vec![
        (Some(names[1].as_str()), Err(&cut_err)),
        (Some("x.ddiff.003"), Ok(&other)),
    ];
    for (k, t) in trailers.iter().enumerate().skip(2) {
        cands.push((Some(names[k].as_str()), t.as_ref()));
    }
    let a = arrange(&cands).unwrap();
    assert_eq!(a.name, "app.ddiff");
    assert_eq!(a.first, 2);
    assert_eq!(a.slots[0], Placed::Missing);
    assert!(matches!(
        a.slots[1],
        Placed::Unreadable { candidate: 0, .. }
    ));
    assert_eq!(a.slots[2], Placed::Present { candidate: 2 });
    assert_eq!(a.refused.len(), 1);
    assert!(a.refused[0]
        .1
        .starts_with("a volume of another set (sha256:"));
    // Stripe 3 with volumes 1 and 2 gone: rebuilt exactly; a third loss is refused.
    let u = g.unit as usize;
    let unit = |i: usize, s: usize| {
        let mut b = files[i][..g.payload_len(i as u32) as usize]
            .get(s * u..)
            .unwrap_or(&[])
            .to_vec();
        b.truncate(u);
        b.resize(u, 0);
        b
    };
    let whole: Vec<Option<Vec<u8>>> = (0..files.len()).map(|i| Some(unit(i, 3))).collect();
    let mut units = whole.clone();
    units[0] = None;
    units[1] = None;
    restore_stripe(&g, 3, &mut units, false).unwrap();
    assert_eq!(units, whole);
    let mut units = whole.clone();
    units[0] = None;
    units[g.data as usize] = None;
    restore_stripe(&g, 3, &mut units, true).unwrap();
    assert_eq!(units, whole);
    let mut units = whole.clone();
    for i in [0, 2, 3] {
        units[i] = None;
    }
    let e = restore_stripe(&g, 3, &mut units, true).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "stripe 3 cannot be rebuilt: 3 of its {} units are missing or damaged (volumes 1, 3, 4), parity covers 2",
            files.len()
        )
    );
}
