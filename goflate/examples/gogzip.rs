//! `gogzip [LEVEL]`: gzip stdin to stdout exactly as Go's `compress/gzip` would
//! (`gzip.NewWriterLevel(os.Stdout, LEVEL)`, zero header). LEVEL is Go's: -2 (HuffmanOnly)
//! to 9, -1 (the default) is 6.
//! `gogzip --candidates`: read a gzip blob's first 10 bytes from stdin and print the Go
//! levels that could have written it, most likely first.
//!
//! Used by tests/e2e/goflate-docker-push.sh and for measuring speed:
//! `cargo build --release -p ddiff-goflate --example gogzip`.

// An example is a host: it reads stdin and writes stdout.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gogzip: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "-1".to_string());
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    if arg == "--candidates" {
        let mut h = [0u8; 10];
        input.read_exact(&mut h)?;
        let levels: Vec<String> = goflate::candidate_levels(&h)
            .iter()
            .map(i32::to_string)
            .collect();
        println!("{}", levels.join(" "));
        return Ok(());
    }
    let level: i32 = arg
        .parse()
        .map_err(|_| format!("usage: gogzip [LEVEL | --candidates], got {arg:?}"))?;
    let stdout = std::io::stdout();
    let mut w = goflate::GzipWriter::new(std::io::BufWriter::new(stdout.lock()), level)?;
    // Docker's io.Copy writes 32 KiB at a time; the output does not depend on it.
    let mut buf = vec![0u8; 32 << 10];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        w.write_all(&buf[..n])?;
    }
    w.finish()?.flush()?;
    Ok(())
}
