#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ddiff_core::fuzz::fuzz_volume_trailer(data));
