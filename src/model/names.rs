//! The "valid name" rule shared by organization IDs, object types and IDs, ACL keys,
//! destination types and versions (spec: metadata.md §1.1).

/// Symbols allowed in a name besides Unicode letters and numbers.
const NAME_SYMBOLS: &[char] = &['|', '!', '@', '#', '$', '^', '*', '-', '_', '.', '~'];

/// True when `value` is non-empty and every character is a letter, a number or one of
/// `| ! @ # $ ^ * - _ . ~`.
pub fn is_valid_name(value: &str) -> bool {
    !value.is_empty() && value.chars().all(is_name_char)
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || NAME_SYMBOLS.contains(&c)
}

/// Destination types and IDs in paths and lists are only required to be free of `<` and `>`.
pub fn is_valid_destination_part(value: &str) -> bool {
    !value.contains(['<', '>'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_letters_numbers_and_symbols() {
        assert!(is_valid_name("model-1.2_x"));
        assert!(is_valid_name("|!@#$^*-_.~"));
        assert!(is_valid_name("модель٣"));
    }

    #[test]
    fn rejects_separators_and_empty() {
        for bad in [
            "", "a b", "a/b", "a\\b", "a:b", "a%2F", "x<y", "a\0b", "a+b", "a,b", "a'b",
        ] {
            assert!(!is_valid_name(bad), "{bad:?} should be rejected");
        }
    }
}
