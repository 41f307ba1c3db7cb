//! Registered stream consumers (RegisterStreamConsumer and friends): filled in by the
//! registry work of the fan-out issue.
