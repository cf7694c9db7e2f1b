//! Revoked JWTs: a watched text file of `jti:<id>` and `sub:<subject>` lines (`#` starts a
//! comment). A token whose `jti` or `sub` is listed is refused, and live connections holding one
//! are closed.

use std::collections::HashSet;

use crate::policy::grant::Grant;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Denylist {
    pub jtis: HashSet<String>,
    pub subs: HashSet<String>,
}

impl Denylist {
    pub fn parse(text: &str) -> Result<Denylist, String> {
        let mut list = Denylist::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            match line.split_once(':') {
                Some(("jti", v)) if !v.trim().is_empty() => list.jtis.insert(v.trim().into()),
                Some(("sub", v)) if !v.trim().is_empty() => list.subs.insert(v.trim().into()),
                _ => {
                    return Err(format!(
                        "line {}: expected `jti:<id>` or `sub:<subject>`",
                        n + 1
                    ))
                }
            };
        }
        Ok(list)
    }

    pub fn denies(&self, grant: &Grant) -> bool {
        grant.jti.as_ref().is_some_and(|j| self.jtis.contains(j))
            || grant.sub.as_ref().is_some_and(|s| self.subs.contains(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_jtis_and_subjects() {
        let list = Denylist::parse("# revoked\njti: abc\nsub:mallory # stolen laptop\n\n").unwrap();
        let grant = |jti: &str, sub: &str| Grant {
            jti: Some(jti.into()),
            sub: Some(sub.into()),
            ..Grant::default()
        };
        assert!(list.denies(&grant("abc", "alice")));
        assert!(list.denies(&grant("x", "mallory")));
        assert!(!list.denies(&grant("x", "alice")));
        assert!(!list.denies(&Grant::default()));
        assert!(Denylist::parse("abc\n").unwrap_err().contains("line 1"));
        assert!(Denylist::parse("jti:\n").is_err());
    }
}
