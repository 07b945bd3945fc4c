//! Keys of the original without effect here: accepted, reported, never an error for a
//! value the original accepts, and never shown with their value.

use super::*;

#[test]
fn mongo_address_in_the_file_is_accepted_and_reported_as_ignored() {
    let c = ok("MongoAddressCsv mongodb://db1:27017,db2:27017\n", &[]);
    assert_eq!(
        c.ignored_keys,
        vec![IgnoredKey {
            key: "MongoAddressCsv",
            origin: "key MongoAddressCsv in the file 'test.conf'".to_string(),
            reason: "MongoDB is not supported",
        }]
    );
    assert!(c.unknown_keys.is_empty());
}

#[test]
fn ignored_key_from_the_environment_names_the_variable() {
    let c = ok("", &[("SHUTDOWN_QUIESCE_TIME", "30")]);
    let found: Vec<String> = c.ignored_keys.iter().map(ToString::to_string).collect();
    assert_eq!(
        found,
        vec!["ShutdownQuiesceTime (environment variable SHUTDOWN_QUIESCE_TIME): a stop waits a fixed grace period for running work"]
    );
}

#[test]
fn every_ignored_key_is_accepted_in_the_file_and_none_is_unknown() {
    let names: Vec<&str> = ignored_key_names().collect();
    // "1" is a valid text, boolean and integer alike.
    let file: String = names.iter().map(|name| format!("{name} 1\n")).collect();
    let c = ok(&file, &[]);
    let reported: Vec<&str> = c.ignored_keys.iter().map(|k| k.key).collect();
    assert_eq!(reported, names);
    assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
    for name in ["MongoAddressCsv", "MongoPassword", "MessagingGroupCacheExpiration"] {
        assert!(names.contains(&name), "{name}");
    }
}

#[test]
fn ignored_values_are_checked_as_the_original_checks_them() {
    let message = load_error("MongoUseSSL yes\n", &[]);
    assert!(
        message.contains("MongoUseSSL") && message.contains("'yes'"),
        "{message}"
    );
    let message = load_error("", &[("MESSAGING_GROUP_CACHE_EXPIRATION", "40000")]);
    assert!(
        message.contains("MessagingGroupCacheExpiration") && message.contains("32767"),
        "{message}"
    );
}

#[test]
fn ignored_values_appear_nowhere() {
    let c = ok("MongoPassword mongo-pass-x\n", &[("MONGO_USERNAME", "mongo-user-x")]);
    let dump = format!("{c:?} {}", c.ignored_keys[0]);
    assert!(
        !dump.contains("mongo-pass-x") && !dump.contains("mongo-user-x"),
        "{dump}"
    );
    assert!(dump.contains("MongoPassword"), "{dump}");
}
