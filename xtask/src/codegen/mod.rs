//! The code generator: the AWS Kinesis service model → `src/api/generated/`.
//!
//! Three stages, as in s3s: [`model`] parses the botocore JSON into typed structs and
//! asserts the generator's assumptions; [`ir`] lowers it to a table of Rust types (which
//! structures are inputs, which are outputs, every member's Rust type and constraints,
//! with the [`patches`] applied); the emitters ([`types`], [`validate`], [`errors`],
//! [`operation`], [`tests`]) write one file each. Every file is run through rustfmt.
//!
//! The generator panics on anything in the model it does not expect; the code it writes
//! never panics on input.

mod errors;
mod ir;
pub mod model;
mod operation;
mod patches;
mod tests;
mod types;
mod util;
mod validate;

use std::path::Path;
use std::process::ExitCode;

/// The model, relative to the workspace root.
pub const DEFAULT_MODEL: &str = "../shared/aws-model/kinesis/service-2.json";

/// Where the generated module lives, relative to the workspace root.
const OUT_DIR: &str = "src/api/generated";

pub fn run(root: &Path, model_path: &Path, check: bool) -> ExitCode {
    let model = model::Model::load(model_path);
    let ir = ir::Ir::build(&model);
    let files = [
        ("mod.rs", mod_rs()),
        ("types.rs", types::codegen(&ir)),
        ("validate.rs", validate::codegen(&ir)),
        ("errors.rs", errors::codegen(&ir)),
        ("operation.rs", operation::codegen(&ir)),
        ("tests.rs", tests::codegen(&ir)),
    ];
    let out_dir = root.join(OUT_DIR);
    let mut stale = Vec::new();
    // Nothing hand-written may sit in the generated directory.
    if let Ok(entries) = std::fs::read_dir(&out_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !files.iter().any(|(f, _)| *f == name) {
                eprintln!(
                    "unexpected file {} in the generated directory",
                    entry.path().display()
                );
                stale.push(entry.path());
            }
        }
    }
    for (name, text) in files {
        let text = util::rustfmt(&text, name);
        let path = out_dir.join(name);
        let old = std::fs::read_to_string(&path).ok();
        if old.as_deref() == Some(text.as_str()) {
            continue;
        }
        if check {
            stale.push(path);
        } else {
            std::fs::create_dir_all(&out_dir).expect("create the output directory");
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            println!("wrote {}", path.display());
        }
    }
    if stale.is_empty() {
        if check {
            println!("{OUT_DIR} is up to date");
        }
        ExitCode::SUCCESS
    } else {
        for p in &stale {
            eprintln!(
                "out of date: {} (run `cargo run -p xtask -- codegen`)",
                p.display()
            );
        }
        ExitCode::FAILURE
    }
}

/// `src/api/generated/mod.rs`.
fn mod_rs() -> String {
    let mut s = util::header("xtask::codegen::mod_rs");
    s.push_str(
        r#"//! The API surface generated from the AWS Kinesis service model
//! (`aws-model/kinesis/service-2.json`) by `cargo run -p xtask -- codegen`.
//!
//! - [`types`]: one struct per input/output structure, one enum per string enum.
//! - [`validate`]: the [`Validate`] trait, AWS's constraint checks and wording.
//! - [`errors`]: [`ErrorCode`], every AWS error `__type` with its HTTP status.
//! - [`operation`]: [`Operation`], the [`Kinesis`] trait (one method per operation) and
//!   [`dispatch`] (decode → validate → call → encode).

pub mod errors;
pub mod operation;
pub mod types;
pub mod validate;

#[cfg(test)]
mod tests;

pub use errors::*;
pub use operation::*;
pub use types::*;
pub use validate::*;
"#,
    );
    s
}
