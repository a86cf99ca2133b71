//! Fuzzes configuration loading from known-good configurations: the shipped
//! `conf/ballast.yaml` and `conf/examples/multi-region.yaml`, and
//! `corpus/config/every-match.yaml`, which uses every section without TLS.
//!
//! The fuzz input picks a seed and a list of structured edits of its YAML
//! tree (replace, remove, insert or copy a node, with keys the configuration
//! knows and values near the edges of what it accepts); the result is
//! written back to YAML and loaded. Unlike raw text, almost every input is
//! well-formed YAML of the right shape, so the semantic validation behind
//! the parser is what gets exercised.
//!
//! Checked: the same as the `config` target (`ballast_fuzz::check_config`).
#![no_main]

use ballast_fuzz::{check_config, Mutation};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|mutation: Mutation<'_>| {
    if let Some(text) = mutation.apply() {
        check_config(&text);
    }
});
