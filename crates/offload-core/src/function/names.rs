//! Names users give to durable-function things: event names, function ids and step ids.
//!
//! Invariant: every name the server stores passed one of these checks, so names are safe in URLs, logs,
//! metric labels and the dashboard, and a name means the same on every server.

/// Longest event name, in bytes.
pub const MAX_EVENT_NAME_LEN: usize = 128;
/// Longest function id, in bytes.
pub const MAX_FUNCTION_ID_LEN: usize = 128;
/// Longest step id, in bytes.
pub const MAX_STEP_ID_LEN: usize = 256;

/// Checks an event name: 1 to 128 bytes of ASCII letters, digits and `-_.:/`, starting with a letter or digit,
/// e.g. `app/user.signup` or `billing:invoice.paid`.
///
/// Names starting with `offload/` are the server's own (such as `offload/function.invoked`); users may listen
/// to them but not send them.
pub fn validate_event_name(name: &str) -> Result<(), String> {
    check_ascii_name(name, MAX_EVENT_NAME_LEN, b"-_.:/")
}

/// Whether `name` is reserved for events the server emits itself.
pub fn is_reserved_event_name(name: &str) -> bool {
    name.starts_with(RESERVED_EVENT_PREFIX)
}

/// Prefix of the events the server emits itself.
pub const RESERVED_EVENT_PREFIX: &str = "offload/";

/// Checks a function id: 1 to 128 bytes of ASCII letters, digits and `-_.:`, starting with a letter or digit
/// (like a queue name, so a function's id can name its queue).
pub fn validate_function_id(id: &str) -> Result<(), String> {
    check_ascii_name(id, MAX_FUNCTION_ID_LEN, b"-_.:")
}

/// Checks a step id: 1 to 256 bytes of any text without control characters. The SDKs number repeats of one
/// id within a run (`send-email`, `send-email:1`, ...), so a user may call a step of the same name in a loop.
pub fn validate_step_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("must not be empty".into());
    }
    if id.len() > MAX_STEP_ID_LEN {
        return Err(format!("must be at most {MAX_STEP_ID_LEN} bytes"));
    }
    if id.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

fn check_ascii_name(name: &str, max: usize, extra: &[u8]) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > max {
        return Err(format!("must be at most {max} bytes"));
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err("must start with an ASCII letter or digit".into());
    }
    if let Some(bad) = name
        .bytes()
        .find(|b| !(b.is_ascii_alphanumeric() || extra.contains(b)))
    {
        let allowed: Vec<String> = extra.iter().map(|b| format!("'{}'", *b as char)).collect();
        return Err(format!(
            "may only contain ASCII letters, digits and {} (found {:?})",
            allowed.join(", "),
            bad as char
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_follow_the_documented_pattern() {
        for ok in ["app/user.signup", "billing:invoice.paid", "a", "x-1_2"] {
            assert_eq!(validate_event_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "/app",
            ".x",
            "app user",
            "app\u{0}",
            "é",
            &"a".repeat(129),
        ] {
            assert!(validate_event_name(bad).is_err(), "{bad:?}");
        }
        assert!(is_reserved_event_name("offload/function.invoked"));
        assert!(!is_reserved_event_name("app/offload"));
    }

    #[test]
    fn function_ids_are_queue_safe() {
        assert_eq!(validate_function_id("send-receipt.v2"), Ok(()));
        assert!(validate_function_id("a/b").is_err());
        assert!(validate_function_id(&"f".repeat(129)).is_err());
    }

    #[test]
    fn step_ids_take_any_text_but_control_characters() {
        assert_eq!(validate_step_id("charge card (1/3)"), Ok(()));
        assert_eq!(validate_step_id("send-email:1"), Ok(()));
        assert!(validate_step_id("").is_err());
        assert!(validate_step_id("a\nb").is_err());
        assert!(validate_step_id(&"s".repeat(257)).is_err());
    }
}
