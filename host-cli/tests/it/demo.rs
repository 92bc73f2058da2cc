//! `ddiff demo`, the README's first command, runs end to end: both rounds, the second
//! carrying the rebuilt app layer as a patch that the load turns back into the same blob, and
//! the first bundle as signed volumes with parity, loaded with one volume lost and the
//! signature checked.

use crate::common::{ddiff, ok};

#[test]
fn demo_runs_both_rounds_and_the_second_carries_a_patch() {
    let out = ok(ddiff().args(["--json", "demo", "--base-mb", "8", "--app-mb", "2"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    assert!(n("bundle_bytes") < n("full_bytes"), "{v}");
    // The patch round: far smaller than carrying the rebuilt layer whole.
    assert!(
        n("delta_bundle_bytes") * 10 < n("delta_layer_level_bytes"),
        "{v}"
    );
    // Round 1's bundle as volumes with parity, one lost: the same image all the same.
    assert!(n("volumes") >= 3, "{v}");
    assert_eq!(v["volume_manifest"], v["manifest"], "{v}");
    assert!(
        v["volume_signature"]
            .as_str()
            .is_some_and(|s| s.ends_with(".ddiff.sig")),
        "{v}"
    );
    for k in ["manifest", "delta_manifest"] {
        assert!(v[k].as_str().unwrap().starts_with("sha256:"), "{v}");
    }
}
