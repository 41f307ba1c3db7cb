//! Emits `src/api/generated/errors.rs`: `ErrorCode`, every error `__type` with its status.

use super::ir::Ir;
use super::util::{header, lit};
use std::fmt::Write;

pub fn codegen(ir: &Ir) -> String {
    let mut s = header("xtask::codegen::errors::codegen");
    s.push_str(
        "//! Every error code kinesis-broker can answer: the model's exception shapes plus the\n\
         //! protocol-level codes AWS sends (listed with their sources in\n\
         //! `xtask/src/codegen/patches.rs`, `EXTRA_ERROR_CODES`).\n\n\
         use std::fmt;\n\n",
    );
    s.push_str("/// An AWS error code: the `__type` of an error response.\n");
    s.push_str("#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]\n");
    s.push_str("pub enum ErrorCode {\n");
    for e in &ir.errors {
        writeln!(
            s,
            "    /// {} HTTP {}.",
            e.doc.trim_end_matches('.').to_string() + ".",
            e.status
        )
        .unwrap();
        writeln!(s, "    {},", e.code).unwrap();
    }
    s.push_str("}\n\nimpl ErrorCode {\n");
    s.push_str("    /// Every code.\n");
    writeln!(
        s,
        "    pub const ALL: [ErrorCode; {}] = [{}];\n",
        ir.errors.len(),
        ir.errors
            .iter()
            .map(|e| format!("ErrorCode::{}", e.code))
            .collect::<Vec<_>>()
            .join(", ")
    )
    .unwrap();
    s.push_str("    /// The `__type` sent on the wire.\n    pub fn as_str(self) -> &'static str {\n        match self {\n");
    for e in &ir.errors {
        writeln!(s, "            ErrorCode::{} => {},", e.code, lit(&e.code)).unwrap();
    }
    s.push_str("        }\n    }\n\n");
    s.push_str("    /// The HTTP status AWS answers this error with.\n    pub fn http_status(self) -> u16 {\n        match self {\n");
    let mut by_status: std::collections::BTreeMap<u16, Vec<&str>> = Default::default();
    for e in &ir.errors {
        by_status.entry(e.status).or_default().push(&e.code);
    }
    for (status, codes) in &by_status {
        let pat = codes
            .iter()
            .map(|c| format!("ErrorCode::{c}"))
            .collect::<Vec<_>>()
            .join(" | ");
        writeln!(s, "            {pat} => {status},").unwrap();
    }
    s.push_str("        }\n    }\n\n");
    s.push_str("    /// The code named by a `__type` (with or without a `namespace#` prefix).\n");
    s.push_str("    pub fn from_name(name: &str) -> Option<ErrorCode> {\n");
    s.push_str(
        "        let name = name.rsplit('#').next().unwrap_or(name);\n        match name {\n",
    );
    for e in &ir.errors {
        writeln!(
            s,
            "            {} => Some(ErrorCode::{}),",
            lit(&e.code),
            e.code
        )
        .unwrap();
    }
    s.push_str("            _ => None,\n        }\n    }\n}\n\n");
    s.push_str(
        "impl fmt::Display for ErrorCode {\n    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {\n        f.write_str(self.as_str())\n    }\n}\n",
    );
    s
}
