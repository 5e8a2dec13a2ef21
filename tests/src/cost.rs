//! The AWS bill per million emails, priced from what a run measured: Lambda's billed
//! time and invocations, every AWS request by type (counted by moto), and the bytes of
//! log and metric lines. The prices and the assumptions are written beside the figures.

use std::fmt::Write as _;

use crate::calls::PathRequests;

/// List prices in US dollars (us-east-1, on demand, beyond the free tier).
#[derive(Debug, Clone, Copy)]
pub struct Prices {
    pub lambda_gb_second_x86_64: f64,
    pub lambda_gb_second_arm64: f64,
    pub lambda_per_million_requests: f64,
    pub sqs_per_million_requests: f64,
    pub dynamodb_per_million_write_units: f64,
    pub dynamodb_per_million_read_units: f64,
    pub logs_per_gb_ingested: f64,
}

/// The prices the table is computed with (AWS's published us-east-1 prices in 2025,
/// DynamoDB's on-demand after its November 2024 reduction).
pub const US_EAST_1: Prices = Prices {
    lambda_gb_second_x86_64: 0.000_016_666_7,
    lambda_gb_second_arm64: 0.000_013_333_4,
    lambda_per_million_requests: 0.20,
    sqs_per_million_requests: 0.40,
    dynamodb_per_million_write_units: 0.625,
    dynamodb_per_million_read_units: 0.125,
    logs_per_gb_ingested: 0.50,
};

/// Lambda's own lines per invocation (its start and report lines in the JSON log
/// format): not ours to measure here, so an assumption, written beside the table.
pub const PLATFORM_LOG_BYTES_PER_INVOCATION: f64 = 600.0;

/// What one path used, per email.
#[derive(Debug, Clone)]
pub struct Usage<'a> {
    pub path: &'static str,
    /// Lambda's billed time: the sum of the invocations' durations.
    pub billed_seconds: f64,
    pub invocations: f64,
    /// The functions' log and metric lines.
    pub log_bytes: f64,
    pub requests: &'a PathRequests,
    /// The email's item in the emails table, and its envelope on the queue, in bytes.
    pub email_bytes: f64,
}

/// The email's moves that rewrite its item: claimed, sending, sent.
pub const EMAIL_WRITES: f64 = 3.0;

/// The write and read request units of an email. Each of its three writes pays one unit
/// per KB of the item, and twice that again for the `byStatusDueAt` index (all attributes
/// projected), whose key (`status`) each move changes: the old entry deleted, the new one
/// put. Every other write (metrics, heartbeats) is a small item: one unit. The email's
/// read as its turn begins is strongly consistent (one unit per 4 KB); other reads are
/// small items (one unit); the due query reads the index (eventually consistent: half a
/// unit per 4 KB of the items it returns) plus one unit a request.
pub fn dynamodb_units(requests: &PathRequests, email_bytes: f64) -> (f64, f64) {
    let email_kb = (email_bytes / 1024.0).ceil().max(1.0);
    let all_writes = requests.of("DynamoDB.UpdateItem")
        + requests.of("DynamoDB.PutItem")
        + requests.of("DynamoDB.DeleteItem");
    let email_writes = EMAIL_WRITES.min(all_writes);
    let writes = email_writes * email_kb * 3.0 + (all_writes - email_writes);
    let gets = requests.of("DynamoDB.GetItem");
    let email_read = gets.min(1.0) * (email_bytes / 4096.0).ceil().max(1.0);
    let queries = requests.of("DynamoDB.Query");
    let returned = if queries > 0.0 {
        0.5 * email_bytes / 4096.0
    } else {
        0.0
    };
    let reads = email_read + (gets - 1.0).max(0.0) + queries + returned;
    (writes, reads)
}

/// SQS requests per email: a batch request is billed per 64 KB of its payload, so ten
/// large envelopes are more than one request (sends and receives); deletes carry none.
pub fn sqs_requests(requests: &PathRequests, email_bytes: f64) -> f64 {
    let chunks_per_batch = (10.0 * email_bytes / 65_536.0).ceil().max(1.0);
    let with_payload = requests.of("SQS.SendMessageBatch") + requests.of("SQS.ReceiveMessage");
    with_payload * chunks_per_batch + (requests.of_service("SQS") - with_payload)
}

/// One line of the bill per million emails, on each architecture.
#[derive(Debug, Clone, PartialEq)]
pub struct BillLine {
    pub item: &'static str,
    pub x86_64: f64,
    pub arm64: f64,
}

/// The bill per million emails of `usage` with functions of `memory_mb`.
pub fn per_million(usage: &Usage<'_>, memory_mb: u32, prices: &Prices) -> Vec<BillLine> {
    let million = 1_000_000.0;
    let gb_seconds = usage.billed_seconds * million * f64::from(memory_mb) / 1024.0;
    let same = |item, dollars: f64| BillLine {
        item,
        x86_64: dollars,
        arm64: dollars,
    };
    let (writes, reads) = dynamodb_units(usage.requests, usage.email_bytes);
    let log_bytes = usage.log_bytes + usage.invocations * PLATFORM_LOG_BYTES_PER_INVOCATION;
    vec![
        BillLine {
            item: "Lambda compute (GB-s)",
            x86_64: gb_seconds * prices.lambda_gb_second_x86_64,
            arm64: gb_seconds * prices.lambda_gb_second_arm64,
        },
        same(
            "Lambda requests",
            usage.invocations * prices.lambda_per_million_requests,
        ),
        same(
            "SQS requests",
            sqs_requests(usage.requests, usage.email_bytes) * prices.sqs_per_million_requests,
        ),
        same(
            "DynamoDB writes",
            writes * prices.dynamodb_per_million_write_units,
        ),
        same(
            "DynamoDB reads",
            reads * prices.dynamodb_per_million_read_units,
        ),
        same(
            "CloudWatch Logs ingestion",
            log_bytes * million / 1e9 * prices.logs_per_gb_ingested,
        ),
    ]
}

/// The bill of each path as a Markdown table, with a total row.
pub fn table(usages: &[Usage<'_>], memory_mb: u32, prices: &Prices) -> String {
    let bills: Vec<Vec<BillLine>> = usages
        .iter()
        .map(|usage| per_million(usage, memory_mb, prices))
        .collect();
    let mut out = String::from("| per million emails |");
    for usage in usages {
        let _ = write!(out, " {} x86_64 | {} arm64 |", usage.path, usage.path);
    }
    out.push_str("\n| --- |");
    out.push_str(&" ---: |".repeat(usages.len() * 2));
    out.push('\n');
    let items: Vec<&'static str> = bills
        .first()
        .map(|lines| lines.iter().map(|line| line.item).collect())
        .unwrap_or_default();
    for (index, item) in items.iter().enumerate() {
        let _ = write!(out, "| {item} |");
        for bill in &bills {
            let _ = write!(
                out,
                " ${:.3} | ${:.3} |",
                bill[index].x86_64, bill[index].arm64
            );
        }
        out.push('\n');
    }
    out.push_str("| **total** |");
    for bill in &bills {
        let x86: f64 = bill.iter().map(|line| line.x86_64).sum();
        let arm: f64 = bill.iter().map(|line| line.arm64).sum();
        let _ = write!(out, " **${x86:.2}** | **${arm:.2}** |");
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requests(pairs: &[(&str, f64)]) -> PathRequests {
        PathRequests {
            path: "symphony",
            ticks: 1,
            per_unit: pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        }
    }

    fn line(bill: &[BillLine], item: &str) -> BillLine {
        bill.iter()
            .find(|line| line.item == item)
            .cloned()
            .unwrap_or_else(|| panic!("no line {item}"))
    }

    #[test]
    fn each_line_is_the_usage_times_its_price() {
        let requests = requests(&[
            ("DynamoDB.UpdateItem", 3.1),
            ("DynamoDB.GetItem", 1.0),
            ("DynamoDB.Query", 0.02),
            ("SQS.SendMessageBatch", 0.1),
            ("SQS.ReceiveMessage", 0.1),
            ("SQS.DeleteMessageBatch", 0.1),
        ]);
        let usage = Usage {
            path: "symphony",
            // 20 ms per email at 512 MB: 10,000 GB-s per million.
            billed_seconds: 0.020,
            invocations: 0.1,
            log_bytes: 400.0,
            requests: &requests,
            email_bytes: 800.0,
        };
        let bill = per_million(&usage, 512, &US_EAST_1);
        let compute = line(&bill, "Lambda compute (GB-s)");
        assert!((compute.x86_64 - 0.166_667).abs() < 1e-4, "{compute:?}");
        assert!((compute.arm64 - 0.133_334).abs() < 1e-4, "{compute:?}");
        assert!((line(&bill, "Lambda requests").x86_64 - 0.02).abs() < 1e-9);
        // The event source's receives and deletes are SQS requests on the bill too.
        assert!((line(&bill, "SQS requests").x86_64 - 0.12).abs() < 1e-9);
        // Three moves of a 1 KB item, each also deleting and putting its index entry: 9
        // units; the metrics write: 0.1.
        assert!((line(&bill, "DynamoDB writes").x86_64 - 9.1 * 0.625).abs() < 1e-9);
        let reads = 1.0 + 0.02 + 0.5 * 800.0 / 4096.0;
        assert!((line(&bill, "DynamoDB reads").x86_64 - reads * 0.125).abs() < 1e-9);
        // 400 B of ours and 60 B of Lambda's per email: 460 MB per million.
        let logs = line(&bill, "CloudWatch Logs ingestion").x86_64;
        assert!((logs - 0.23).abs() < 1e-9, "{logs}");
    }

    #[test]
    fn large_emails_pay_per_kilobyte_written_and_per_64_kb_queued() {
        let requests = requests(&[
            ("DynamoDB.UpdateItem", 3.0),
            ("DynamoDB.GetItem", 1.0),
            ("DynamoDB.Query", 0.02),
            ("SQS.SendMessageBatch", 0.1),
            ("SQS.ReceiveMessage", 0.1),
            ("SQS.DeleteMessageBatch", 0.1),
        ]);
        // 10 KB emails: 10 units a write, three writes and their index entries; a batch
        // of ten is 100 KB, two 64 KB chunks.
        let (writes, reads) = dynamodb_units(&requests, 10_240.0);
        assert!((writes - 90.0).abs() < 1e-9, "{writes}");
        assert!((reads - (3.0 + 0.02 + 0.5 * 2.5)).abs() < 1e-9, "{reads}");
        assert!((sqs_requests(&requests, 10_240.0) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn the_table_has_a_column_per_path_and_architecture_and_a_total() {
        let requests = requests(&[("DynamoDB.UpdateItem", 1.0)]);
        let usage = |path| Usage {
            path,
            billed_seconds: 0.0,
            invocations: 0.0,
            log_bytes: 0.0,
            requests: &requests,
            email_bytes: 500.0,
        };
        let table = table(&[usage("legacy"), usage("symphony")], 256, &US_EAST_1);
        assert!(table.starts_with(
            "| per million emails | legacy x86_64 | legacy arm64 | symphony x86_64 | symphony arm64 |"
        ));
        // One write: the email's first move, with its index entry's delete and put.
        assert!(
            table.contains("| DynamoDB writes | $1.875 | $1.875 | $1.875 | $1.875 |"),
            "{table}"
        );
        assert!(
            table.contains("| **total** | **$1.88** | **$1.88** | **$1.88** | **$1.88** |"),
            "{table}"
        );
    }
}
