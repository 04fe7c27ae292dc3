//! Setting passwords and PINs (the operator commands; `PUT /user/pin` builds on the same function).

use super::clock::to_millis;
use super::{ServiceError, Services};
use crate::domain::{Factor, Password, Pin, Subject};

/// A new credential that has passed its policy.
pub enum NewCredential {
    Password(Password),
    Pin(Pin),
}

impl NewCredential {
    fn factor(&self) -> Factor {
        match self {
            NewCredential::Password(_) => Factor::Password,
            NewCredential::Pin(_) => Factor::Pin,
        }
    }

    fn expose(&self) -> &str {
        match self {
            NewCredential::Password(p) => p.expose(),
            NewCredential::Pin(p) => p.expose(),
        }
    }
}

impl Services {
    /// Hashes and stores a password or PIN, replacing any earlier one.
    pub async fn set_credential(
        &self,
        sub: &Subject,
        new: NewCredential,
    ) -> Result<(), ServiceError> {
        let phc = self.hasher.hash(new.expose()).await?;
        self.store
            .set_credential(sub, new.factor(), &phc, to_millis(self.clock.now()))
            .await?;
        self.watch.changed(sub);
        Ok(())
    }
}
