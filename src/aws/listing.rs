//! Listing and finding resources the same way for every service: every page of a list
//! call, the listed resources carrying a set of tags, and "the one with this name, if
//! it carries our address tag". Each provider supplies only its SDK calls.

use std::collections::BTreeMap;
use std::future::Future;

use crate::provider::{ErrorClass, Observed, ProviderError, Target};

/// Tags as a map.
pub(crate) type Tags = BTreeMap<String, String>;

/// Every item of a paginated list call. `page(token)` fetches one page and returns its
/// items and the next token (`None` or empty at the end).
pub(crate) async fn all_pages<T, F, Fut>(mut page: F) -> Result<Vec<T>, ProviderError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), ProviderError>>,
{
    let mut out = Vec::new();
    let mut token = None;
    // A service that keeps answering with the token it was given would loop forever.
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let (items, next) = page(token.take()).await?;
        out.extend(items);
        match next.filter(|t| !t.is_empty()) {
            Some(t) if seen.insert(t.clone()) => token = Some(t),
            Some(t) => {
                return Err(ProviderError::fatal(format!(
                    "the list call repeated its page token `{t}`"
                )))
            }
            None => return Ok(out),
        }
    }
}

/// The items whose tags hold every tag of `want`, each with its tags. `tags_of` reads
/// one item's tags (given a copy of it); an item deleted between the list and that
/// read is left out.
pub(crate) async fn carrying<T, F, Fut>(
    items: Vec<T>,
    want: &Tags,
    tags_of: F,
) -> Result<Vec<(T, Tags)>, ProviderError>
where
    T: Clone,
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<Tags, ProviderError>>,
{
    let mut out = Vec::new();
    for item in items {
        let tags = match tags_of(item.clone()).await {
            Ok(t) => t,
            Err(e) if e.class == ErrorClass::NotFound => continue,
            Err(e) => return Err(e),
        };
        if has_tags(&tags, want) {
            out.push((item, tags));
        }
    }
    Ok(out)
}

/// Each tagged item read in full by `read`, with the tags it was listed with; items
/// gone since the listing are left out.
pub(crate) async fn read_tagged<T, F, Fut>(
    tagged: Vec<(T, Tags)>,
    read: F,
) -> Result<Vec<Observed>, ProviderError>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<Option<Observed>, ProviderError>>,
{
    let mut out = Vec::new();
    for (item, tags) in tagged {
        if let Some(o) = read(item).await? {
            out.push(crate::aws::with_tags(o, &tags));
        }
    }
    Ok(out)
}

/// The resource found by its name, if it is this target's: it carries the target's
/// `deploy:address` tag. A same-named resource without it belongs to someone else.
pub(crate) async fn if_ours<T, F, Fut>(
    found: Option<T>,
    target: &Target<'_>,
    tags_of: F,
) -> Result<Vec<T>, ProviderError>
where
    T: Clone,
    F: FnOnce(T) -> Fut,
    Fut: Future<Output = Result<Tags, ProviderError>>,
{
    let Some(item) = found else {
        return Ok(Vec::new());
    };
    let tags = match tags_of(item.clone()).await {
        Ok(t) => t,
        Err(e) if e.class == ErrorClass::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let address = target.address.as_str();
    Ok(
        if tags.get("deploy:address").map(String::as_str) == Some(address) {
            vec![item]
        } else {
            Vec::new()
        },
    )
}

/// [`if_ours`] for a resource whose read already holds its tags (in its `tags` input).
pub(crate) fn if_read_ours(found: Option<Observed>, target: &Target<'_>) -> Vec<Observed> {
    found
        .filter(|o| {
            crate::aws::tags_of(&o.inputs)
                .get("deploy:address")
                .map(String::as_str)
                == Some(target.address.as_str())
        })
        .into_iter()
        .collect()
}

/// Whether `have` holds every tag of `want`.
pub(crate) fn has_tags(have: &Tags, want: &Tags) -> bool {
    want.iter().all(|(k, v)| have.get(k) == Some(v))
}

/// Tags from any list of pairs an SDK returns.
pub(crate) fn tags_from<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Tags {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Splits a composite id (`POOL_ID/CLIENT_ID`, `API_ID/STAGE`); `shape` names the
/// parts for the error.
pub(crate) fn split_id<'a>(id: &'a str, shape: &str) -> Result<(&'a str, &'a str), ProviderError> {
    id.split_once('/')
        .ok_or_else(|| ProviderError::fatal(format!("`{id}` is not {shape}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Address;
    use std::sync::Mutex;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        tags_from(pairs.iter().copied())
    }

    #[tokio::test]
    async fn all_pages_follows_tokens_to_the_end() {
        let asked = Mutex::new(Vec::new());
        let items = all_pages(|token: Option<String>| {
            asked.lock().unwrap().push(token.clone());
            async move {
                Ok(match token.as_deref() {
                    None => (vec![1, 2], Some("p2".to_string())),
                    Some("p2") => (vec![3], Some("p3".to_string())),
                    Some("p3") => (vec![], Some(String::new())),
                    _ => unreachable!(),
                })
            }
        })
        .await
        .unwrap();
        assert_eq!(items, vec![1, 2, 3]);
        assert_eq!(
            *asked.lock().unwrap(),
            vec![None, Some("p2".into()), Some("p3".into())]
        );
    }

    #[tokio::test]
    async fn all_pages_stops_on_a_repeated_token_and_passes_errors_on() {
        let looping = all_pages(|_| async { Ok((vec![1], Some("same".to_string()))) }).await;
        assert!(looping
            .unwrap_err()
            .message
            .contains("repeated its page token"));
        let failing = all_pages(|_| async {
            Err::<(Vec<u8>, Option<String>), _>(ProviderError::new(
                ErrorClass::Throttled,
                "slow down",
            ))
        })
        .await;
        assert_eq!(failing.unwrap_err().class, ErrorClass::Throttled);
    }

    #[tokio::test]
    async fn carrying_keeps_items_with_every_wanted_tag_and_skips_vanished_ones() {
        let want = tags(&[("deploy:environment", "pr-7"), ("deploy:project", "trivia")]);
        let found = carrying(
            vec!["a", "b", "c", "gone"],
            &want,
            |item: &str| async move {
                match item {
                    "a" => Ok(tags(&[
                        ("deploy:environment", "pr-7"),
                        ("deploy:project", "trivia"),
                        ("Name", "x"),
                    ])),
                    "b" => Ok(tags(&[
                        ("deploy:environment", "pr-8"),
                        ("deploy:project", "trivia"),
                    ])),
                    "c" => Ok(tags(&[("deploy:environment", "pr-7")])),
                    _ => Err(ProviderError::not_found("deleted meanwhile")),
                }
            },
        )
        .await
        .unwrap();
        let names: Vec<&str> = found.iter().map(|(i, _)| *i).collect();
        assert_eq!(names, vec!["a"]);
        assert_eq!(found[0].1["Name"], "x");
    }

    #[tokio::test]
    async fn if_ours_needs_the_address_tag() {
        let address = Address::new("function.api");
        let target = Target {
            address: &address,
            name: Some("trivia-dev-api".into()),
            tags: Tags::new(),
            inputs: None,
        };
        let ours = if_ours(Some(1), &target, |_| async {
            Ok(tags(&[("deploy:address", "function.api")]))
        })
        .await
        .unwrap();
        assert_eq!(ours, vec![1]);
        let theirs = if_ours(Some(1), &target, |_| async {
            Ok(tags(&[("deploy:address", "function.other")]))
        })
        .await
        .unwrap();
        assert!(theirs.is_empty());
        let untagged = if_ours(Some(1), &target, |_| async { Ok(Tags::new()) }).await;
        assert!(untagged.unwrap().is_empty());
        let none = if_ours(None::<u8>, &target, |_| async { Ok(Tags::new()) }).await;
        assert!(none.unwrap().is_empty());
    }

    #[test]
    fn if_read_ours_reads_the_address_from_the_read_tags() {
        let address = Address::new("function.api");
        let target = Target {
            address: &address,
            name: None,
            tags: Tags::new(),
            inputs: None,
        };
        let read = |addr: &str| Observed {
            id: "trivia-dev-api".into(),
            inputs: crate::model::Attrs::from([(
                "tags".into(),
                serde_json::json!({"deploy:address": addr}),
            )]),
            outputs: Default::default(),
        };
        assert_eq!(if_read_ours(Some(read("function.api")), &target).len(), 1);
        assert!(if_read_ours(Some(read("function.web")), &target).is_empty());
        assert!(if_read_ours(None, &target).is_empty());
    }

    #[test]
    fn split_id_names_the_expected_shape() {
        assert_eq!(split_id("p/c", "POOL_ID/CLIENT_ID").unwrap(), ("p", "c"));
        let e = split_id("pc", "POOL_ID/CLIENT_ID").unwrap_err();
        assert_eq!(e.message, "`pc` is not POOL_ID/CLIENT_ID");
    }
}
