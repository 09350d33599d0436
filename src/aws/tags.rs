//! Tags, the same way for every service: what changed between two sets, applying a
//! change with a service's own untag and tag calls, and the tags that identify a
//! resource of an environment.

use std::collections::BTreeMap;
use std::future::Future;

use crate::model::Attrs;
use crate::provider::{Observed, ProviderError, Target};

/// How a resource's tags change from `before` to `after`: keys to remove, tags to set.
pub(crate) struct TagChanges {
    pub removed: Vec<String>,
    pub set: BTreeMap<String, String>,
}

impl TagChanges {
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.set.is_empty()
    }
}

pub(crate) fn tag_changes(before: &Attrs, after: &Attrs) -> TagChanges {
    let (old, new) = (tags_of(before), tags_of(after));
    TagChanges {
        removed: old
            .keys()
            .filter(|k| !new.contains_key(*k))
            .cloned()
            .collect(),
        set: new
            .into_iter()
            .filter(|(k, v)| old.get(k) != Some(v))
            .collect(),
    }
}

/// The tags that identify a resource of this environment.
pub(crate) fn identity_tags(target: &Target<'_>) -> Vec<(String, String)> {
    ["deploy:project", "deploy:environment", "deploy:address"]
        .iter()
        .filter_map(|k| target.tags.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect()
}

/// Tags from a resource's inputs.
pub(crate) fn tags_of(inputs: &Attrs) -> BTreeMap<String, String> {
    inputs
        .get("tags")
        .and_then(|t| serde_json::from_value(t.clone()).ok())
        .unwrap_or_default()
}

/// `o` with its `tags` input set to `tags` (the tags a list call read separately).
pub(crate) fn with_tags(mut o: Observed, tags: &BTreeMap<String, String>) -> Observed {
    o.inputs.insert("tags".into(), serde_json::json!(tags));
    o
}

/// Applies the tag change from `before` to `after`: `untag` gets the removed keys and
/// `tag` the added or changed tags, each only when there are any.
pub(crate) async fn retag<U, UF, S, SF>(
    before: &Attrs,
    after: &Attrs,
    untag: U,
    tag: S,
) -> Result<(), ProviderError>
where
    U: FnOnce(Vec<String>) -> UF,
    UF: Future<Output = Result<(), ProviderError>>,
    S: FnOnce(BTreeMap<String, String>) -> SF,
    SF: Future<Output = Result<(), ProviderError>>,
{
    let changes = tag_changes(before, after);
    if !changes.removed.is_empty() {
        untag(changes.removed).await?;
    }
    if !changes.set.is_empty() {
        tag(changes.set).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Mutex;

    fn with(tags: serde_json::Value) -> Attrs {
        Attrs::from([("tags".into(), tags)])
    }

    #[test]
    fn tag_changes_lists_only_what_differs() {
        let before = with(json!({"a": "1", "b": "2", "c": "3"}));
        let after = with(json!({"a": "1", "b": "20", "d": "4"}));
        let t = tag_changes(&before, &after);
        assert_eq!(t.removed, vec!["c".to_string()]);
        assert_eq!(
            t.set.into_iter().collect::<Vec<_>>(),
            vec![("b".into(), "20".into()), ("d".into(), "4".into())]
        );
        assert!(tag_changes(&after, &after).is_empty());
    }

    #[tokio::test]
    async fn retag_calls_the_service_only_for_what_changed() {
        let calls = Mutex::new(Vec::new());
        let before = with(json!({"keep": "1", "gone": "2", "changed": "3"}));
        let after = with(json!({"keep": "1", "changed": "30", "new": "4"}));
        retag(
            &before,
            &after,
            |keys| {
                calls.lock().unwrap().push(format!("untag {keys:?}"));
                async { Ok(()) }
            },
            |tags| {
                calls.lock().unwrap().push(format!("tag {tags:?}"));
                async { Ok(()) }
            },
        )
        .await
        .unwrap();
        assert_eq!(
            *calls.lock().unwrap(),
            vec![
                r#"untag ["gone"]"#.to_string(),
                r#"tag {"changed": "30", "new": "4"}"#.to_string()
            ]
        );
        // No change: no call at all (an empty TagResource is an error on some services).
        let none = Mutex::new(0);
        retag(
            &after,
            &after,
            |_| {
                *none.lock().unwrap() += 1;
                async { Ok(()) }
            },
            |_| {
                *none.lock().unwrap() += 1;
                async { Ok(()) }
            },
        )
        .await
        .unwrap();
        assert_eq!(*none.lock().unwrap(), 0);
    }
}
