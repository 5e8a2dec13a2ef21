//! `{{ name }}` templates for campaign emails and SMS bodies. A variable the recipient does
//! not have is an error naming it, never a blank in a sent message; values the recipient
//! supplied are HTML-escaped in HTML.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    Html,
    /// Plain text (an SMS body, an email subject).
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template variable {name:?} has no value for this recipient")]
    Missing { name: String },
    #[error("template has an unclosed {{{{ at byte {at}")]
    Unclosed { at: usize },
}

pub fn render(
    template: &str,
    values: &BTreeMap<String, String>,
    escape: Escape,
) -> Result<String, TemplateError> {
    let mut output = String::with_capacity(template.len());
    let mut rest = template;
    let mut offset = 0;
    while let Some(start) = rest.find("{{") {
        output.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or(TemplateError::Unclosed { at: offset + start })?;
        let name = after[..end].trim();
        let value = values.get(name).ok_or_else(|| TemplateError::Missing {
            name: name.to_owned(),
        })?;
        match escape {
            Escape::Html => push_escaped(&mut output, value),
            Escape::None => output.push_str(value),
        }
        let consumed = start + 2 + end + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    output.push_str(rest);
    Ok(output)
}

fn push_escaped(output: &mut String, value: &str) {
    for character in value.chars() {
        match character {
            '&' => output.push_str("&amp;"),
            '<' => output.push_str("&lt;"),
            '>' => output.push_str("&gt;"),
            '"' => output.push_str("&quot;"),
            '\'' => output.push_str("&#39;"),
            other => output.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("firstName".to_owned(), "<b>Bob</b> & co".to_owned()),
            ("company".to_owned(), "Acme".to_owned()),
        ])
    }

    #[test]
    fn variables_are_filled_and_escaped_in_html() {
        let html = render(
            "<p>Hi {{ firstName }}, from {{company}}</p>",
            &values(),
            Escape::Html,
        )
        .unwrap();
        assert_eq!(html, "<p>Hi &lt;b&gt;Bob&lt;/b&gt; &amp; co, from Acme</p>");
        let text = render("Hi {{firstName}}", &values(), Escape::None).unwrap();
        assert_eq!(text, "Hi <b>Bob</b> & co");
    }

    #[test]
    fn a_missing_variable_is_named_not_blanked() {
        let error = render("Hi {{ lastName }}", &values(), Escape::Html).unwrap_err();
        assert_eq!(
            error,
            TemplateError::Missing {
                name: "lastName".into()
            }
        );
        assert!(error.to_string().contains("\"lastName\""));
    }

    #[test]
    fn an_unclosed_variable_is_an_error() {
        assert_eq!(
            render("Hi {{ name", &values(), Escape::None),
            Err(TemplateError::Unclosed { at: 3 })
        );
    }
}
