//! The six fields of an Amazon Resource Name, `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`,
//! split once here so that streams, resource policies and their principals read ARNs alike.

/// An ARN's fields, borrowed from the text. `resource` keeps any further `:` or `/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arn<'a> {
    /// `aws`, `aws-cn`, `aws-us-gov`, …
    pub partition: &'a str,
    /// `kinesis`, `iam`, `sts`, …
    pub service: &'a str,
    /// Empty for global services (IAM).
    pub region: &'a str,
    /// The 12-digit account (not checked here).
    pub account: &'a str,
    /// `stream/NAME`, `root`, …
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    /// The fields of `s`, if it starts with `arn:` and has all six.
    pub fn parse(s: &'a str) -> Option<Self> {
        let mut parts = s.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        Some(Arn {
            partition: parts.next()?,
            service: parts.next()?,
            region: parts.next()?,
            account: parts.next()?,
            resource: parts.next()?,
        })
    }

    /// Whether the partition is one of AWS's (`aws`, `aws-cn`, …).
    pub fn in_aws_partition(&self) -> bool {
        self.partition.starts_with("aws")
    }
}

/// A 12-digit AWS account id.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_fields_with_the_resource_kept_whole() {
        let arn =
            Arn::parse("arn:aws:kinesis:us-east-1:123456789012:stream/s/consumer/c:1").unwrap();
        assert_eq!(arn.partition, "aws");
        assert_eq!(arn.service, "kinesis");
        assert_eq!(arn.region, "us-east-1");
        assert_eq!(arn.account, "123456789012");
        assert_eq!(arn.resource, "stream/s/consumer/c:1");
        assert!(
            Arn::parse("arn:aws:iam::123456789012:root")
                .unwrap()
                .region
                .is_empty()
        );
        assert_eq!(Arn::parse("arm:aws:kinesis:r:1:x"), None);
        assert_eq!(Arn::parse("arn:aws:kinesis:r:1"), None);
        assert!(is_account_id("123456789012"));
        assert!(!is_account_id("12345678901a"));
    }
}
