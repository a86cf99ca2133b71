//! `ballast-bare-pingora-mimalloc`: the benchmark's bare Pingora proxy with
//! mimalloc, the allocator Ballast uses (see `ballast_load_tests::bare_pingora`).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    ballast_load_tests::bare_pingora::main("ballast-bare-pingora-mimalloc");
}
