//! Emits `src/api/generated/operation.rs`: `Operation`, the `Kinesis` trait and `dispatch`.

use super::ir::Ir;
use super::util::{doc_lines, header, lit};
use std::fmt::Write;

pub fn codegen(ir: &Ir) -> String {
    let mut s = header("xtask::codegen::operation::codegen");
    s.push_str(
        "//! The operations: their names, the [`Kinesis`] trait with one method per operation\n\
         //! (each defaulting to `NotImplementedException`), and [`dispatch`], the glue that\n\
         //! decodes, validates, calls and encodes.\n\n\
         use super::types::*;\n\
         use super::validate::Validate;\n\
         use crate::api::{ApiError, Codec, RequestContext};\n\
         use std::fmt;\n\n",
    );

    // The enum.
    s.push_str(
        "/// A Kinesis operation, as named in `X-Amz-Target: Kinesis_20131202.<Operation>`.\n",
    );
    s.push_str("#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]\npub enum Operation {\n");
    for op in &ir.ops {
        s.push_str(&doc_lines(op.doc.as_deref(), "    "));
        writeln!(s, "    {},", op.name).unwrap();
    }
    s.push_str("}\n\nimpl Operation {\n");
    writeln!(
        s,
        "    /// Every operation, in model order.\n    pub const ALL: [Operation; {}] = [{}];\n",
        ir.ops.len(),
        ir.ops
            .iter()
            .map(|o| format!("Operation::{}", o.name))
            .collect::<Vec<_>>()
            .join(", ")
    )
    .unwrap();
    writeln!(s, "    /// The `X-Amz-Target` prefix: `{}`.\n    pub const TARGET_PREFIX: &'static str = {};\n", ir.model.metadata.target_prefix, lit(&ir.model.metadata.target_prefix)).unwrap();
    s.push_str("    /// The operation's name (`PutRecords`).\n    pub fn as_str(self) -> &'static str {\n        match self {\n");
    for op in &ir.ops {
        writeln!(
            s,
            "            Operation::{} => {},",
            op.name,
            lit(&op.name)
        )
        .unwrap();
    }
    s.push_str("        }\n    }\n\n");
    s.push_str("    /// The operation named `name` (exact, case-sensitive, as AWS matches it).\n    pub fn from_name(name: &str) -> Option<Operation> {\n        match name {\n");
    for op in &ir.ops {
        writeln!(
            s,
            "            {} => Some(Operation::{}),",
            lit(&op.name),
            op.name
        )
        .unwrap();
    }
    s.push_str("            _ => None,\n        }\n    }\n\n");
    s.push_str("    /// The operation named by a whole `X-Amz-Target` header value\n    /// (`Kinesis_20131202.PutRecords`).\n    pub fn from_target(target: &str) -> Option<Operation> {\n        let (prefix, name) = target.split_once('.')?;\n        if prefix != Self::TARGET_PREFIX {\n            return None;\n        }\n        Self::from_name(name)\n    }\n}\n\n");
    s.push_str("impl fmt::Display for Operation {\n    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {\n        f.write_str(self.as_str())\n    }\n}\n\n");

    // The trait.
    s.push_str(
        "/// The Kinesis API: one method per operation, each answering `NotImplementedException`\n\
         /// until overridden. Inputs arrive decoded and validated against the model.\n\
         pub trait Kinesis: Send + Sync {\n",
    );
    for op in &ir.ops {
        s.push_str(&doc_lines(op.doc.as_deref(), "    "));
        let out = op.output.as_deref().unwrap_or("()");
        writeln!(
            s,
            "    fn {}(&self, _ctx: &RequestContext, _input: {}) -> impl Future<Output = Result<{out}, ApiError>> + Send {{\n        async {{ Err(ApiError::not_implemented({})) }}\n    }}\n",
            op.method,
            op.input,
            lit(&op.name)
        )
        .unwrap();
    }
    s.push_str("}\n\n");

    // Dispatch.
    s.push_str(
        "/// Runs `op` on `body`: decode the input with `codec` (a malformed body is\n\
         /// `SerializationException`), validate it against the model (`ValidationException`),\n\
         /// call `service`, encode the output. Operations without an output shape answer an\n\
         /// empty body, as AWS does.\n\
         pub async fn dispatch<K: Kinesis, C: Codec>(\n    service: &K,\n    ctx: &RequestContext,\n    op: Operation,\n    codec: &C,\n    body: &[u8],\n) -> Result<Vec<u8>, ApiError> {\n    match op {\n",
    );
    for op in &ir.ops {
        writeln!(s, "        Operation::{} => {{", op.name).unwrap();
        writeln!(
            s,
            "            let input: {} = codec.decode(body)?;\n            input.validate()?;",
            op.input
        )
        .unwrap();
        if let Some(reason) = &op.not_dispatched {
            writeln!(s, "            // Not dispatched here: {reason}.\n            let _ = (service, ctx, input);\n            Err(ApiError::not_implemented({}))", lit(&op.name)).unwrap();
        } else if op.output.is_some() {
            writeln!(s, "            let output = service.{}(ctx, input).await?;\n            Ok(codec.encode(&output))", op.method).unwrap();
        } else {
            writeln!(
                s,
                "            service.{}(ctx, input).await?;\n            Ok(Vec::new())",
                op.method
            )
            .unwrap();
        }
        s.push_str("        }\n");
    }
    s.push_str("    }\n}\n");
    s
}
