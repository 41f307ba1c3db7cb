//! SubscribeToShard sessions.

/// Live subscriptions (filled in with SubscribeToShard).
#[derive(Debug, Default)]
pub struct Sessions {}
