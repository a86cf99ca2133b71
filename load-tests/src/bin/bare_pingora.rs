//! `ballast-bare-pingora`: the benchmark's bare Pingora proxy with the
//! system allocator (see `ballast_load_tests::bare_pingora`).

fn main() {
    ballast_load_tests::bare_pingora::main("ballast-bare-pingora");
}
