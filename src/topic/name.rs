//! Kafka's topic-name rules, and the names reserved for the store's internal topics.

use crate::error::{Error, Result};

/// Refuses a topic the application would create (or import) under a name reserved for
/// internal topics: one starting with `__`, or one that is such a name up to `.` and `_`
/// (`_.transaction_state`): Kafka takes those for one name, and the internal topic,
/// created when first needed, would then be refused for good.
pub(crate) fn refuse_reserved_name(name: &str) -> Result<()> {
    if name.replace('.', "_").starts_with("__") {
        return Err(Error::InvalidArgument {
            name: "topic",
            reason: format!(
                "`{name}`: names starting with `__` (up to '.' and '_', one name in Kafka) \
                 are reserved for internal topics"
            ),
        });
    }
    Ok(())
}

/// Checks `name` as [`Store::create_topic`](crate::Store::create_topic) does before it
/// touches the disk: a valid name ([`validate_topic_name`]) that is not reserved for
/// internal topics (starting with `__`, counting `.` as `_`).
///
/// ```
/// assert!(streamlog::validate_new_topic_name("clicks").is_ok());
/// assert!(streamlog::validate_new_topic_name("__mine").is_err());
/// assert!(streamlog::validate_new_topic_name("bad/name").is_err());
/// ```
///
/// # Errors
/// `InvalidArgument` naming what is wrong.
pub fn validate_new_topic_name(name: &str) -> Result<()> {
    validate_topic_name(name)?;
    refuse_reserved_name(name)
}

/// Refuses a write by the application to an internal topic (`__consumer_offsets`):
/// only the store writes those, in their own formats, and reads them back at open.
pub(crate) fn refuse_internal(topic: &str, what: &str) -> Result<()> {
    if topic.starts_with("__") {
        return Err(Error::InvalidArgument {
            name: "topic",
            reason: format!("`{topic}` is an internal topic; {what}"),
        });
    }
    Ok(())
}

/// Checks Kafka's topic-name rules: 1 to 249 characters from ASCII letters, digits, `.`,
/// `_` and `-`; not `.` or `..`. Names starting with `__` are reserved for internal topics.
///
/// # Errors
/// `InvalidArgument` saying which rule failed.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let bad = |reason: String| Error::InvalidArgument {
        name: "topic",
        reason,
    };
    if name.is_empty() {
        return Err(bad("a topic name cannot be empty".into()));
    }
    if name.len() > 249 {
        return Err(bad(format!(
            "`{}…` is {} bytes; the limit is 249",
            name.chars().take(20).collect::<String>(),
            name.len()
        )));
    }
    if name == "." || name == ".." {
        return Err(bad(format!("`{name}` is not a legal topic name")));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(bad(format!(
            "`{name}` contains {c:?}; only ASCII letters, digits, '.', '_' and '-' are allowed"
        )));
    }
    Ok(())
}
