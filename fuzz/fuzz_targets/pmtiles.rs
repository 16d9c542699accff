#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| citygrid_fuzz::run("pmtiles", data));
