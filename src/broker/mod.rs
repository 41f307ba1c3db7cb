//! The broker domain: streams, shards, routing, sequence numbers, iterators.
