//! `kinesis-broker streams`: the account's streams as a table (ListStreams, then
//! DescribeStreamSummary for each).

use super::{ConnectArgs, Failure};
use std::io::Write;

/// `streams` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct StreamsArgs {
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Prints NAME, STATUS, MODE, OPEN SHARDS and RETENTION (hours) for every stream.
pub async fn run(args: StreamsArgs) -> Result<(), Failure> {
    let client = args.connect.client()?;
    let names = client.list_stream_names().await?;
    let mut rows = vec![[
        "NAME".to_string(),
        "STATUS".to_string(),
        "MODE".to_string(),
        "OPEN_SHARDS".to_string(),
        "RETENTION_HOURS".to_string(),
    ]];
    for name in names {
        let summary = match client.describe_stream_summary(&name).await {
            Ok(summary) => summary,
            // Deleted between the two calls: not worth failing the listing for.
            Err(e) if e.code() == Some("ResourceNotFoundException") => continue,
            Err(e) => return Err(e.into()),
        };
        let dash = || "-".to_string();
        rows.push([
            summary.stream_name,
            summary.stream_status,
            summary
                .stream_mode_details
                .map(|m| m.stream_mode)
                .unwrap_or_else(|| "PROVISIONED".to_string()),
            summary
                .open_shard_count
                .map_or_else(dash, |n| n.to_string()),
            summary
                .retention_period_hours
                .map_or_else(dash, |n| n.to_string()),
        ]);
    }
    print!("{}", table(&rows));
    let _ = std::io::stdout().flush();
    Ok(())
}

/// Left-aligned columns two spaces apart; the last column is not padded.
fn table(rows: &[[String; 5]]) -> String {
    let mut widths = [0usize; 5];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up() {
        let row = |a: &str, b: &str| {
            [
                a.to_string(),
                b.to_string(),
                "M".to_string(),
                "1".to_string(),
                "24".to_string(),
            ]
        };
        let text = super::table(&[row("NAME", "STATUS"), row("a-long-name", "ACTIVE")]);
        assert_eq!(
            text,
            "NAME         STATUS  M  1  24\na-long-name  ACTIVE  M  1  24\n"
        );
    }
}
