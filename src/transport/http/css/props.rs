//! Property tests of the node-to-node routes' path reading: any path under `/spi/v1` is a
//! route or a client error, and a route addresses an object only by valid names and numbers.

use super::*;
use crate::api::routes::checks::any_method;
use crate::proptest_cases::{budget, QUICK};
use crate::transport::http::ess::content_range_start;
use proptest::prelude::*;

/// A path word: route words, actions, names, numbers at the edges of `i64`, anything.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::sample::select(vec![
            "register", "register-new", "ping", "unregister", "objects", "resend", "data", "update", "updated",
            "received", "consumed", "deleted", "delete", "ackdelete", "feedback", "ackreceived", "Data",
        ])
        .prop_map(str::to_string),
        2 => "[a-z0-9]{1,6}",
        1 => prop::sample::select(vec!["9223372036854775807", "9223372036854775808", "-9223372036854775808", "+1", "-0", "1e3", "0x10"])
            .prop_map(str::to_string),
        1 => "\\PC{1,6}",
    ]
}

proptest! {
    #![proptest_config(budget(QUICK))]

    /// The start the ESS reads from a `Content-Range` it is answered is the one printed.
    #[test]
    fn printed_content_ranges_give_their_start(start in any::<u64>(), end in any::<u64>(), total in any::<u64>()) {
        prop_assert_eq!(content_range_start(&format!("bytes {start}-{end}/{total}")), Some(start));
    }

    #[test]
    fn any_spi_request_is_routed_or_a_client_error(method in any_method(), words in prop::collection::vec(word(), 0..8)) {
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        match route(&method, &refs) {
            Ok(SpiRoute::Data { key, .. } | SpiRoute::Action { key, .. }) => {
                prop_assert!(is_valid_name(&key.org) && is_valid_name(&key.object_type) && is_valid_name(&key.object_id));
                prop_assert!(refs[4].parse::<i64>().is_ok(), "instance {:?}", refs[4]);
            }
            Ok(_) => {}
            Err(error) => {
                let status = error.into_response().status();
                prop_assert!(status.is_client_error(), "{status}");
            }
        }
    }

    #[test]
    fn any_raw_spi_path_is_recognised_or_a_client_error(method in any_method(), rest in "[ -~]{0,40}") {
        let path = format!("{PREFIX}/{rest}");
        if let Err(error) = recognise(true, &method, &path) {
            let status = error.into_response().status();
            prop_assert!(status.is_client_error() || status == StatusCode::MOVED_PERMANENTLY, "{status} for {path}");
        }
    }
}
