//! Personal data kept out of reasons: a server's reply or a decoder's message can quote an
//! email address or a phone number, and reasons go to logs, `lastError` and dead letters.

/// What stands in for a removed address or number.
pub const REDACTED: &str = "<redacted>";

/// `text` with every email address and phone number replaced by [`REDACTED`]. An address
/// is a run of address characters around an `@` with a dot after it; a phone number is
/// `+` and at least seven digits, or at least ten digits, with the separators people
/// write (space, dot, dash, parentheses) between them.
pub fn personal_data(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut index = 0;
    while index < chars.len() {
        if let Some(end) = address_at(&chars, index).or_else(|| phone_at(&chars, index)) {
            out.push_str(REDACTED);
            index = end;
        } else {
            out.push(chars[index]);
            index += 1;
        }
    }
    out
}

fn is_address_char(c: char) -> bool {
    c.is_alphanumeric() || "._%+-'".contains(c)
}

/// The end of an email address starting at `start`, if one does.
fn address_at(chars: &[char], start: usize) -> Option<usize> {
    if start > 0 && is_address_char(chars[start - 1]) {
        return None;
    }
    let mut at = start;
    while at < chars.len() && is_address_char(chars[at]) {
        at += 1;
    }
    if at == start || chars.get(at) != Some(&'@') {
        return None;
    }
    let domain_start = at + 1;
    let mut end = domain_start;
    while end < chars.len()
        && (chars[end].is_alphanumeric() || chars[end] == '.' || chars[end] == '-')
    {
        end += 1;
    }
    // A trailing dot ends the sentence, not the domain.
    while end > domain_start && chars[end - 1] == '.' {
        end -= 1;
    }
    let domain: String = chars[domain_start..end].iter().collect();
    (domain.contains('.') && !domain.starts_with('.')).then_some(end)
}

/// The end of a phone number starting at `start`, if one does: `+` then digits with the
/// separators people write (a space, a dot, a dash, parentheses; two at most in a row) and
/// seven digits or more; a national number in three groups or more (or starting with a
/// bracketed area code) separated by spaces, dashes or parentheses, seven digits or more,
/// unless dashes make it a date (`555-010-0199`, `(555) 010 0199`, `0470 12 34 56`; dots
/// are left alone: ids like `42.1234.5`, addresses like `203.0.113.45`); or ten digits or
/// more in one run.
fn phone_at(chars: &[char], start: usize) -> Option<usize> {
    if start > 0 && chars[start - 1].is_alphanumeric() {
        return None;
    }
    let international = chars[start] == '+';
    let bracketed = chars[start] == '(' && chars.get(start + 1).is_some_and(char::is_ascii_digit);
    if !international && !bracketed && !chars[start].is_ascii_digit() {
        return None;
    }
    let separators_allowed: &str = if international { " .-()" } else { " -()" };
    let mut at = if international || bracketed {
        start + 1
    } else {
        start
    };
    let mut groups = vec![0_usize];
    // The groups at the start joined by dashes alone: a date, if shaped like one.
    let mut leading_dashed = 1;
    let mut dashes_so_far = true;
    let mut end = at;
    while at < chars.len() {
        if chars[at].is_ascii_digit() {
            if let Some(last) = groups.last_mut() {
                *last += 1;
            }
            at += 1;
            end = at;
            continue;
        }
        let separators = chars[at..]
            .iter()
            .take(3)
            .take_while(|c| separators_allowed.contains(**c))
            .count();
        if separators == 0 || separators > 2 {
            break;
        }
        if !chars.get(at + separators).is_some_and(char::is_ascii_digit) {
            break;
        }
        dashes_so_far &= chars[at..at + separators].iter().all(|c| *c == '-');
        if dashes_so_far {
            leading_dashed += 1;
        }
        at += separators;
        groups.push(0);
    }
    let digits: usize = groups.iter().sum();
    let enough = if international {
        digits >= 7
    } else if groups.len() >= 3 || (bracketed && groups.len() >= 2) {
        digits >= 7 && !is_date(&groups[..leading_dashed])
    } else {
        digits >= 10 && groups.len() == 1
    };
    // A number that runs on into letters, or into a dot and more digits (an id, an
    // address, a decimal), is not a phone number.
    let runs_on = chars.get(end).is_some_and(|c| c.is_alphanumeric())
        || (chars.get(end) == Some(&'.') && chars.get(end + 1).is_some_and(char::is_ascii_digit));
    (enough && !runs_on).then_some(end)
}

/// Dash-separated digit groups shaped like a date (2026-11-29, 29-11-2026): kept, they
/// say when (a time may follow).
fn is_date(groups: &[usize]) -> bool {
    matches!(groups, [4, 1 | 2, 1 | 2, ..] | [1 | 2, 1 | 2, 4, ..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_numbers_with_separators_are_removed_and_dates_ids_and_codes_kept() {
        assert_eq!(
            personal_data("not E.164: 555-010-0199."),
            "not E.164: <redacted>."
        );
        assert_eq!(personal_data("call (555) 010 0199"), "call <redacted>");
        assert_eq!(personal_data("mobile 0470 12 34 56"), "mobile <redacted>");
        for kept in [
            "held since 2026-11-29 21:07 and 29.11.2026, reply 550 5.1.1",
            "email 42.1234.5 could not be marked sent",
            "Client host [203.0.113.45] blocked; 192.168.1.10:587",
            "elapsed 1234.567 ms, years 2025-2026, hours 0900-1700",
            "id 0f8e2c1a-2231-4597-b1e0-6c0c2d9f1e2a",
            "421-4.7.28 and 550 5.7.26",
        ] {
            assert_eq!(personal_data(kept), kept);
        }
    }

    #[test]
    fn addresses_and_numbers_are_removed_and_the_rest_kept() {
        assert_eq!(
            personal_data("550 5.1.1 <bounce@example.com>: Recipient address rejected"),
            "550 5.1.1 <<redacted>>: Recipient address rejected"
        );
        assert_eq!(
            personal_data("invalid number +1 (555) 010-0199 for step 2."),
            "invalid number <redacted> for step 2."
        );
        assert_eq!(
            personal_data("to 15550100199: refused"),
            "to <redacted>: refused"
        );
        assert_eq!(
            personal_data("mail to ada.l+x@mail.example.org."),
            "mail to <redacted>."
        );
    }

    #[test]
    fn codes_ids_and_durations_are_not_mistaken_for_personal_data() {
        for kept in [
            "the SMTP server replied 451 to RCPT TO",
            "elapsed: 2003 ms; no verdict within 2s",
            "email email-42 at step 3, enrollment e1",
            "status 5.1.1, 2026-11-29T21:07:11Z",
            "first failure 2026-11-29 21:07",
            "user@localhost is not an address here",
        ] {
            assert_eq!(personal_data(kept), kept);
        }
    }
}
