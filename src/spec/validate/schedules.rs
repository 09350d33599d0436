//! `schedules`: rule names once prefixed, expressions, target functions.

use super::Checker;
use crate::spec::values::{is_slug, schedule_expression};
use crate::spec::yaml::escape;

impl Checker<'_> {
    pub(super) fn schedules(&mut self) {
        for (name, s) in &self.spec.schedules {
            let base = format!("/schedules/{}", escape(name));
            let physical = format!("{}-{name}", self.prefix());
            if !is_slug(name) {
                self.key_err(
                    &base,
                    format!("schedule name `{name}` must be lowercase letters, digits and hyphens"),
                );
            } else if physical.len() > 64 {
                self.key_err(&base, format!("the rule name `{physical}` is {} characters; EventBridge allows at most 64", physical.len()));
            }
            if let Err((why, hint)) = schedule_expression(&s.expression) {
                self.err(&format!("{base}/expression"), why).hint(hint);
            }
            if !self.spec.functions.contains_key(&s.function) {
                self.unknown_function(&format!("{base}/function"), &s.function);
            }
        }
    }
}
