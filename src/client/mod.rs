//! A client for the Kinesis API, used by the `tail`, `put` and `streams` commands: SigV4
//! signing ([`sigv4`], shared with the server side), endpoint and credential resolution as
//! the AWS CLI does it ([`credentials`]) and the calls themselves ([`kinesis`]).

pub mod credentials;
pub mod kinesis;
pub mod sigv4;
pub mod time;

pub use credentials::{Credentials, Overrides, Settings};
pub use kinesis::{ClientError, KinesisClient, Position};
