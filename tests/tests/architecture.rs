//! The dependency direction of the design: the core and the jobs know nothing of AWS;
//! adapters sit at the edge (`symphony-aws`, `symphony-adapters`), and only functions,
//! tools and tests wire them in.

use std::path::Path;

/// The names of a crate's normal dependencies, from its manifest's `[dependencies]`.
fn dependencies(manifest: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(manifest);
    let text = std::fs::read_to_string(&path).expect("the manifest is readable");
    text.lines()
        .skip_while(|line| line.trim() != "[dependencies]")
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('['))
        .filter_map(|line| line.split(['=', '.']).next())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty() && !name.starts_with('#'))
        .collect()
}

fn is_aws(name: &str) -> bool {
    name.starts_with("aws-sdk")
        || name.starts_with("aws-config")
        || name.starts_with("aws-smithy")
        || name == "symphony-aws"
        || name == "symphony-adapters"
        || name == "lambda_runtime"
}

#[test]
fn the_core_and_the_jobs_do_not_depend_on_aws() {
    for manifest in ["shared/core/Cargo.toml", "shared/jobs/Cargo.toml"] {
        let found = dependencies(manifest);
        assert!(found.contains(&"symphony-core".to_owned()) || manifest.contains("core"));
        let aws: Vec<&String> = found.iter().filter(|name| is_aws(name)).collect();
        assert!(aws.is_empty(), "{manifest} depends on {aws:?}");
    }
    // The check reads what it should: the adapters do depend on the SDK.
    let adapters = dependencies("shared/adapters/Cargo.toml");
    assert!(
        adapters.iter().any(|name| name == "aws-sdk-dynamodb"),
        "{adapters:?}"
    );
}
