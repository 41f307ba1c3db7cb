//! The S3 client channels write with: the AWS SDK's S3 client on the smithy runtime (hyper 1,
//! rustls with `ring`), pointed at `--s3-endpoint` with path-style addressing, credentials
//! from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`).

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ServerSideEncryption, StorageClass as S3Class};

use super::StorageClass;

/// An S3 endpoint and the client that writes to it.
#[derive(Debug, Clone)]
pub struct S3Sink {
    client: aws_sdk_s3::Client,
}

/// How one object is written besides its bucket, key and bytes.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// `x-amz-expected-bucket-owner`: S3 refuses the write when another account owns it.
    pub expected_owner: Option<String>,
    /// `x-amz-storage-class`.
    pub storage_class: Option<StorageClass>,
    /// SSE-KMS with this key.
    pub kms_key_id: Option<String>,
    /// `Content-Type`.
    pub content_type: Option<&'static str>,
}

impl S3Sink {
    /// A client for `endpoint` (`http://HOST:PORT` or `https://…`).
    pub fn new(endpoint: &str) -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let credentials = Credentials::new(
            var("AWS_ACCESS_KEY_ID").unwrap_or_default(),
            var("AWS_SECRET_ACCESS_KEY").unwrap_or_default(),
            var("AWS_SESSION_TOKEN"),
            None,
            "environment",
        );
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_string());
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .force_path_style(true)
            .region(Region::new(region))
            .credentials_provider(credentials)
            .http_client(http)
            .build();
        Self {
            client: aws_sdk_s3::Client::from_conf(conf),
        }
    }

    /// Writes one object (replacing any object of the same key). The error is the store's
    /// answer in words, for the log and the dead-letter reason.
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        options: &PutOptions,
    ) -> Result<(), String> {
        let mut request = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body));
        if let Some(owner) = &options.expected_owner {
            request = request.expected_bucket_owner(owner);
        }
        if let Some(class) = options.storage_class {
            request = request.storage_class(match class {
                StorageClass::Standard => S3Class::Standard,
                StorageClass::IntelligentTiering => S3Class::IntelligentTiering,
                StorageClass::GlacierIr => S3Class::GlacierIr,
            });
        }
        if let Some(key_id) = &options.kms_key_id {
            request = request
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(key_id);
        }
        if let Some(ct) = options.content_type {
            request = request.content_type(ct);
        }
        // The body is not hashed into the signature: the SDK's CRC32 checksum of it
        // (`x-amz-checksum-crc32`, verified by S3) already guards it, and SHA-256 of every
        // object was 2% of a delivering broker's CPU (benches/RESULTS.md, issue 22).
        let request = request.customize().disable_payload_signing();
        request.send().await.map(|_| ()).map_err(|e| {
            use aws_sdk_s3::error::ProvideErrorMetadata;
            match (e.code(), e.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_string(),
                _ => format!("{}", aws_sdk_s3::error::DisplayErrorContext(&e)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Reads one HTTP/1.1 request (head and `content-length` bytes of body), answers 200.
    async fn one_request(listener: tokio::net::TcpListener) -> (String, Vec<u8>) {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let head_end = loop {
            let mut chunk = [0u8; 4096];
            let n = conn.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the client closed before its request ended");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8(buf[..head_end].to_vec())
            .unwrap()
            .to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |v| v.trim().parse().unwrap());
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            let n = conn.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            buf.extend_from_slice(&chunk[..n]);
        }
        conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\netag: \"x\"\r\n\r\n")
            .await
            .unwrap();
        (head, buf[head_end..head_end + length].to_vec())
    }

    #[tokio::test]
    async fn uploads_are_unsigned_and_guarded_by_their_crc32() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink = S3Sink::new(&format!("http://{}", listener.local_addr().unwrap()));
        let server = tokio::spawn(one_request(listener));
        let body = b"{\"n\":1}\n{\"n\":2}\n".to_vec();
        sink.put("lake", "a/key.json", body.clone(), &PutOptions::default())
            .await
            .unwrap();
        let (head, received) = server.await.unwrap();
        assert!(head.starts_with("put /lake/a/key.json"), "{head}");
        assert_eq!(received, body, "the body is sent as is, not aws-chunked");
        // Not hashed into the signature (SHA-256 of every object was 2% of a channel's
        // CPU) ...
        assert!(
            head.contains("x-amz-content-sha256: unsigned-payload"),
            "{head}"
        );
        // ... because its CRC32, a signed header S3 verifies, guards it.
        let crc = base64_simd::STANDARD
            .encode_to_string(crc32fast::hash(&body).to_be_bytes())
            .to_lowercase();
        assert!(
            head.contains(&format!("x-amz-checksum-crc32: {crc}")),
            "{head}"
        );
        let signed = head
            .lines()
            .find_map(|l| l.split("signedheaders=").nth(1))
            .unwrap();
        assert!(signed.contains("x-amz-checksum-crc32"), "{head}");
    }
}
