//! Project tasks.
//!
//! `cargo run -p xtask -- codegen [--check] [MODEL]` regenerates `src/api/generated/` from
//! the AWS Kinesis service model (`../shared/aws-model/kinesis/service-2.json` relative to
//! the workspace root by default). With `--check` it writes nothing and exits with status 1
//! when the committed files differ from what it would generate (CI runs this).

mod codegen;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: cargo run -p xtask -- codegen [--check] [MODEL_PATH]";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("codegen") => {
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
            codegen::run(&root, &model, check)
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
