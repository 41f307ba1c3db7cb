//! Project tasks.
//!
//! `cargo run -p xtask -- codegen [--check] [MODEL]` regenerates `src/api/generated/` from
//! the AWS Kinesis service model (`../shared/aws-model/kinesis/service-2.json` relative to
//! the workspace root by default). With `--check` it writes nothing and exits with status 1
//! when the committed files differ from what it would generate (CI runs this).
//! `codegen` also writes (or, with `--check`, checks) the validation test table
//! `tests/data/validation_table.json`; `validation-table [--check] [MODEL]` does only that.

mod codegen;
mod validation_table;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: cargo run -p xtask -- codegen|validation-table [--check] [MODEL_PATH]";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some(cmd @ ("codegen" | "validation-table")) => {
            let cmd = cmd.to_string();
            let mut check = false;
            let mut model = None;
            for arg in args {
                match arg.as_str() {
                    "--check" => check = true,
                    "-h" | "--help" => {
                        println!("{USAGE}");
                        return ExitCode::SUCCESS;
                    }
                    s if s.starts_with('-') => {
                        eprintln!("unknown flag {s}\n{USAGE}");
                        return ExitCode::from(2);
                    }
                    _ if model.is_none() => model = Some(PathBuf::from(arg)),
                    _ => {
                        eprintln!("too many arguments\n{USAGE}");
                        return ExitCode::from(2);
                    }
                }
            }
            let root = workspace_root();
            let model = model.unwrap_or_else(|| root.join(codegen::DEFAULT_MODEL));
            let table = validation_table::run(&root, &model, check);
            if cmd == "validation-table" {
                return table;
            }
            let generated = codegen::run(&root, &model, check);
            if generated == ExitCode::SUCCESS {
                table
            } else {
                generated
            }
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// The workspace root: the parent of this crate's manifest directory.
fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}
