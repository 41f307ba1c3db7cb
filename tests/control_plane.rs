//! Control plane (issue 5). Skeleton; filled in below.
#[path = "common/mod.rs"]
mod common;

#[tokio::test]
async fn skeleton() {
    let (_c, h, _d) = common::start_server().await;
    h.shutdown().await.unwrap();
}
