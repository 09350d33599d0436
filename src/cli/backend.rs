//! `deploy backend bootstrap`: the S3 bucket a team keeps its state in, made the same
//! way however often it runs.

use anstream::println;

use super::common::{Failure, Outcome};
use super::{BackendCommand, Settings};
use crate::spec;
use crate::state::s3;

pub(super) async fn run(s: &Settings, c: BackendCommand) -> Outcome {
    let BackendCommand::Bootstrap {
        bucket,
        keep_versions_days,
        region,
    } = c;
    let loaded = s.spec_path().ok().and_then(|p| spec::check(p).0);
    let from_spec = loaded
        .as_ref()
        .and_then(|l| l.spec.state.as_ref())
        .and_then(|st| st.s3.clone());
    let Some(bucket) = bucket.or_else(|| from_spec.as_ref().map(|s3| s3.bucket.clone())) else {
        return Err(Failure::new(
            "which bucket? pass --bucket NAME, or set `state: { s3: { bucket: NAME } }` in the spec named by -e",
        ));
    };
    s3::check_bucket(&bucket).map_err(Failure::new)?;
    let region = region
        .or_else(|| from_spec.map(|s3| s3.region).filter(|r| !r.is_empty()))
        .or_else(|| loaded.map(|l| l.spec.region).filter(|r| !r.is_empty()))
        .or_else(|| std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()))
        .unwrap_or_else(|| "us-east-1".into());
    let client = s3::client(&region).await.map_err(Failure::new)?;
    let done = s3::bootstrap(&client, &bucket, &region, keep_versions_days)
        .await
        .map_err(Failure::new)?;
    for step in &done {
        println!("  {step}");
    }
    println!("State bucket `{bucket}` is ready. Point an environment at it with:");
    println!("  state:");
    println!("    s3: {{ bucket: {bucket}, prefix: PROJECT, region: {region} }}");
    println!(
        "and move existing state with `deploy state migrate -e ENV --to s3://{bucket}/PROJECT`."
    );
    Ok(0)
}
