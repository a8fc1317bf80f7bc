//! A failed delivery's recorded error, read back: the HTTP status, or the timeout, connection failure or
//! address refusal it reports, and the detail that followed (for the dashboard's push page).
//!
//! Invariant: this reads exactly the texts [`crate::push::classify`] writes (its tests feed it classify's own
//! output, so a change of wording there fails here); any other text is [`Recorded::Other`], never a guess.

/// What a failed push attempt's error says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded<'a> {
    /// The endpoint answered with `status`; `detail` is what followed it (the body's start, a redirect
    /// note), empty when nothing did.
    Status {
        /// The HTTP status code.
        status: u16,
        /// The text after the status.
        detail: &'a str,
    },
    /// No complete answer within the request timeout.
    Timeout,
    /// The connection could not be made or broke; why (e.g. `tcp connect error: Connection refused`).
    Connect(&'a str),
    /// The outbound address policy refused the target's addresses; why.
    Refused(&'a str),
    /// A text the delivery did not write (e.g. `cancelled during delivery`), as it is.
    Other(&'a str),
}

/// Reads a failed delivery's error.
pub fn read(error: &str) -> Recorded<'_> {
    if let Some(rest) = error.strip_prefix("HTTP ") {
        let (code, detail) = match rest.split_once(": ") {
            Some((code, detail)) => (code, detail),
            None => (rest, ""),
        };
        if code.len() == 3
            && code.bytes().all(|b| b.is_ascii_digit())
            && let Ok(status) = code.parse()
        {
            return Recorded::Status { status, detail };
        }
        return Recorded::Other(error);
    }
    if error == "request timed out" {
        return Recorded::Timeout;
    }
    if let Some(why) = error.strip_prefix("connection failed: ") {
        return Recorded::Connect(why);
    }
    if let Some(why) = error.strip_prefix("refused by the outbound address policy: ") {
        return Recorded::Refused(why);
    }
    Recorded::Other(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::outcome::{Delivery, PushOutcome, Response, classify};

    /// The error `classify` records for a delivery.
    fn recorded(delivery: Delivery<'_>) -> String {
        let now = "2026-06-01T12:00:00Z".parse().unwrap();
        match classify(delivery, now).outcome {
            PushOutcome::Failed(f) => f.error,
            PushOutcome::Succeeded(_) => panic!("not a failure"),
        }
    }

    fn response(status: u16, body: &[u8]) -> Delivery<'_> {
        Delivery::Response(Response {
            status,
            retry_after: None,
            location: None,
            body,
            truncated: false,
        })
    }

    #[test]
    fn reads_what_classify_writes() {
        let e = recorded(response(500, b"upstream: down"));
        assert_eq!(
            read(&e),
            Recorded::Status {
                status: 500,
                detail: "upstream: down"
            }
        );
        let e = recorded(response(404, b""));
        assert_eq!(
            read(&e),
            Recorded::Status {
                status: 404,
                detail: ""
            }
        );
        let e = recorded(Delivery::Response(Response {
            status: 302,
            retry_after: None,
            location: Some("https://elsewhere.example/"),
            body: b"",
            truncated: false,
        }));
        assert!(matches!(
            read(&e),
            Recorded::Status { status: 302, detail } if detail.starts_with("redirect to https://elsewhere.example/")
        ));
        assert_eq!(read(&recorded(Delivery::Timeout)), Recorded::Timeout);
        let e = recorded(Delivery::Connect("tcp connect error: Connection refused"));
        assert_eq!(
            read(&e),
            Recorded::Connect("tcp connect error: Connection refused")
        );
        let e = recorded(Delivery::Refused("127.0.0.1 is a loopback address"));
        assert_eq!(
            read(&e),
            Recorded::Refused("127.0.0.1 is a loopback address")
        );
    }

    #[test]
    fn other_texts_are_left_alone() {
        for text in [
            "cancelled during delivery",
            "lease expired",
            "HTTP 5000: odd",
            "HTTP abc",
            "",
        ] {
            assert_eq!(read(text), Recorded::Other(text), "{text:?}");
        }
    }
}
