//! Enums stored by name (a record's status): each name is written once, in the enum's
//! declaration, and `as_str`, `Display` and `FromStr` follow from it.

/// Declares an enum whose values are stored by name: `Variant => "name"` once each. An
/// unknown name fails to parse with "unknown <what> <name>".
macro_rules! stored_names {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $( $(#[$variant_meta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$variant_meta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$( $name::$variant, )+];

            /// The name the value is stored by.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $( $text => Ok($name::$variant), )+
                    other => Err(format!(concat!("unknown ", $what, " {:?}"), other)),
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use crate::campaign::{CampaignStatus, LeadStatus};
    use crate::email::EmailStatus;
    use crate::sms::EnrollmentStatus;

    fn round_trips<T>(all: &[T]) -> Vec<String>
    where
        T: Copy + PartialEq + std::fmt::Debug + std::fmt::Display + std::str::FromStr,
        T::Err: std::fmt::Debug,
    {
        for value in all {
            assert_eq!(value.to_string().parse::<T>().unwrap(), *value);
        }
        all.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn every_status_is_stored_by_its_one_name_and_read_back() {
        assert_eq!(
            round_trips(EmailStatus::ALL),
            ["queued", "claimed", "sending", "sent", "failed", "unknown"]
        );
        assert_eq!(
            round_trips(EnrollmentStatus::ALL),
            [
                "active",
                "claimed",
                "sending",
                "opted_out",
                "finished",
                "failed",
                "unknown"
            ]
        );
        assert_eq!(
            round_trips(CampaignStatus::ALL),
            ["active", "paused", "completed", "failed"]
        );
        assert_eq!(
            round_trips(LeadStatus::ALL),
            [
                "active",
                "replied",
                "unsubscribed",
                "bounced",
                "finished",
                "failed"
            ]
        );
        let unknown = "lost".parse::<EmailStatus>().unwrap_err();
        assert_eq!(unknown, "unknown email status \"lost\"");
    }

    #[test]
    fn the_ledger_names_each_state_as_the_records_do() {
        use crate::email::EmailRecord;
        use crate::sms::Enrollment;
        use symphony_core::{LedgerRecord, UnitState};
        let states = [
            UnitState::Ready,
            UnitState::Claimed,
            UnitState::Sending,
            UnitState::Unknown,
            UnitState::Done,
            UnitState::Stopped,
            UnitState::Failed,
        ];
        for state in states {
            let email = EmailStatus::of_state(state).map(EmailStatus::as_str);
            assert_eq!(EmailRecord::STATUS.name(state), email, "{state:?}");
            let enrollment = EnrollmentStatus::of_state(state);
            assert_eq!(enrollment.state(), state);
            assert_eq!(Enrollment::STATUS.name(state), Some(enrollment.as_str()));
        }
    }
}
