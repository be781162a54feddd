//! The signer's side (`resetdesk signer`): it holds the factory master secret and the
//! signing keys, and answers the desk's requests under rules of its own, so a desk
//! taken over cannot mint answers at will. It checks every export it answers again, by
//! its own clock (genuine, alive, version 2 with its binding); answers each challenge
//! once; caps answers per hour and per device serial; and logs every answer and
//! refusal in its own hash-chained log (`ledger.rs`).

use std::sync::Arc;

use super::ledger::{Challenge, Ledger, LedgerError};
use super::wire::{ExportProblem, Reply, Request, TypedKey};
use crate::clock::Clock;
use crate::crypto::pkcs11::{Token, TokenError, TokenMaster, TokenSigningKey};
use crate::crypto::{
    DeviceKey, DeviceKeys, KeyId, KeyStore, KeyStoreError, MasterSecret, PublicKeySet,
};
use crate::domain::DeviceSerial;
use crate::domain::TicketNumber;
use crate::protocol::challenge::VerifiedResetRequest;
use crate::protocol::{
    DeviceChallenge, DeviceResponse, PROTOCOL_V2, ResetRequest, export_xml, recover_responses,
    respond_with, response,
};

/// The signer's own rules.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Answers in any hour (`signer_max_answers_per_hour`).
    pub answers_per_hour: u32,
    /// Answers for one device serial in any day (`signer_max_answers_per_serial_per_day`).
    pub answers_per_serial_per_day: u32,
    /// How far in the future an export may claim to be made (clocks differ).
    pub max_skew_secs: i64,
}

/// Where the signer's signing key is.
pub enum SigningKeySource {
    /// The active key file of its keys directory, read again at each answer (a `keys
    /// rotate` there takes effect at once).
    KeyFiles,
    /// Keys in a PKCS#11 token, made there, signing there: the one the keyring names
    /// active, looked up again when a `keys rotate` made another one active.
    Token(Arc<TokenKeys>),
}

/// The signing keys of a token under one label, and the one signing now.
pub struct TokenKeys {
    token: Arc<Token>,
    label: String,
    active: std::sync::RwLock<Arc<TokenSigningKey>>,
}

impl TokenKeys {
    pub fn new(token: Arc<Token>, label: String, active: TokenSigningKey) -> Self {
        Self {
            token,
            label,
            active: std::sync::RwLock::new(Arc::new(active)),
        }
    }

    /// The key the keyring names active (`active`), found in the token if it is not the
    /// one loaded: the signer follows a `keys rotate` without a restart.
    fn signing(&self, active: &KeyId) -> Result<Arc<TokenSigningKey>, Reply> {
        let loaded = self
            .active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if loaded.id() == active {
            return Ok(loaded);
        }
        match TokenSigningKey::find(&self.token, &self.label, active) {
            Ok(Some(key)) => {
                tracing::info!(key_id = %active, token = %self.token.label(), "the keyring names another active key: signing with it in the token");
                let key = Arc::new(key);
                *self.active.write().unwrap_or_else(|e| e.into_inner()) = key.clone();
                Ok(key)
            }
            Ok(None) => {
                tracing::error!(key_id = %active, "the keyring's active key is not in the token");
                Err(failed(format!(
                    "the keyring's active key {active} is not in the token: see the signer's log"
                )))
            }
            Err(error) => {
                tracing::error!(%error, "cannot find the active key in the token");
                Err(failed(
                    "the signing key's token failed: see the signer's log",
                ))
            }
        }
    }
}

/// Where the factory master secret is: read from its file at start, or in a token that
/// derives each device key inside.
pub enum MasterSource {
    File(MasterSecret),
    Token(TokenMaster),
}

impl MasterSource {
    pub fn key_id(&self) -> String {
        match self {
            Self::File(master) => master.key_id(),
            Self::Token(master) => master.key_id().to_owned(),
        }
    }
}

impl DeviceKeys for MasterSource {
    type Error = TokenError;

    fn device_key(&self, serial: &DeviceSerial) -> Result<DeviceKey, TokenError> {
        match self {
            Self::File(master) => Ok(master.derive_device_key(serial)),
            Self::Token(master) => master.device_key(serial),
        }
    }
}

pub struct Service {
    master: Arc<MasterSource>,
    keys: KeyStore,
    signing: SigningKeySource,
    ledger: Ledger,
    policy: Policy,
    clock: Arc<dyn Clock>,
    refusals: std::sync::Mutex<RefusalBudget>,
}

/// Refusals written to the log one by one in a minute; beyond, they are counted and one
/// entry says how many, so a desk sending refused requests in a loop cannot fill the
/// signer's disk through its log.
const REFUSALS_LOGGED_PER_MINUTE: u32 = 60;

#[derive(Default)]
struct RefusalBudget {
    minute: i64,
    written: u32,
    left_out: u64,
}

impl Service {
    pub fn new(
        keys: KeyStore,
        master: MasterSource,
        signing: SigningKeySource,
        ledger: Ledger,
        policy: Policy,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, KeyStoreError> {
        Ok(Self {
            master: Arc::new(master),
            keys,
            signing,
            ledger,
            policy,
            clock,
            refusals: std::sync::Mutex::new(RefusalBudget::default()),
        })
    }

    /// One request, one reply; nothing the desk sends is trusted beyond what this reads.
    pub async fn handle(&self, request: Request) -> Reply {
        let result = match request {
            Request::Hello => self.hello(),
            Request::CheckExport { export } => self.check(&export).await.map(|_| Reply::Checked),
            Request::Answer { ticket, export } => self.answer(&ticket, &export).await,
            Request::Recover { export, responses } => self.recover(&export, &responses).await,
        };
        result.unwrap_or_else(|reply| reply)
    }

    fn hello(&self) -> Result<Reply, Reply> {
        Ok(Reply::Hello {
            master_key_id: self.master.key_id(),
            signing_key_id: self.signing_key_id()?.to_string(),
        })
    }

    /// The id of the key that signs now: the keyring's active key.
    fn signing_key_id(&self) -> Result<KeyId, Reply> {
        Ok(self.keys.active_entry().map_err(failed)?.id().clone())
    }

    /// Whether a token does the work: it then runs on a thread that may block, not on
    /// one of the runtime's workers.
    fn uses_token(&self) -> bool {
        matches!(self.signing, SigningKeySource::Token(_))
            || matches!(*self.master, MasterSource::Token(_))
    }

    async fn off_the_runtime<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Reply> {
        if !self.uses_token() {
            return Ok(work());
        }
        tokio::task::spawn_blocking(work).await.map_err(|e| {
            tracing::error!(error = %e, "the token's work ended abnormally");
            failed("the signer failed: see its log")
        })
    }

    /// Answers a checked export with the key that signs now (`key_id`).
    async fn respond(
        &self,
        verified: &VerifiedResetRequest,
        key_id: &KeyId,
    ) -> Result<Vec<DeviceResponse>, Reply> {
        let master = self.master.clone();
        let verified = verified.clone();
        match &self.signing {
            SigningKeySource::KeyFiles => {
                let key = self.keys.active_signing_key().map_err(failed)?;
                self.off_the_runtime(move || {
                    respond_with(&verified, &*master, key.id(), |bytes| {
                        Ok::<_, TokenError>(key.sign(bytes))
                    })
                    .map_err(token_failed)
                })
                .await?
            }
            SigningKeySource::Token(keys) => {
                let (keys, key_id) = (keys.clone(), key_id.clone());
                self.off_the_runtime(move || {
                    let key = keys.signing(&key_id)?;
                    respond_with(&verified, &*master, key.id(), |bytes| key.sign(bytes))
                        .map_err(token_failed)
                })
                .await?
            }
        }
    }

    /// Reads and checks an export by the signer's own clock.
    async fn check(&self, export: &str) -> Result<VerifiedResetRequest, Reply> {
        let request = read_export(export)?;
        let (master, now, skew) = (
            self.master.clone(),
            self.clock.now(),
            self.policy.max_skew_secs,
        );
        self.off_the_runtime(move || request.verify_with(&*master, now, skew))
            .await?
            .map_err(token_failed)?
            .map_err(|e| Reply::NotGenuine {
                problem: ExportProblem::from(&e),
            })
    }

    async fn answer(&self, ticket: &str, export: &str) -> Result<Reply, Reply> {
        // The desk's word for which ticket this is, kept in the log as it says it: at
        // least it is one, and cannot carry other text.
        let ticket = TicketNumber::parse(ticket)
            .map_err(|_| refused("the ticket is not a ticket number".to_owned()))?
            .to_string();
        let ticket = ticket.as_str();
        let verified = self.check(export).await?;
        let now = self.clock.now();
        if verified.version() != PROTOCOL_V2 || verified.binding().is_none() {
            let why = "only version 2 exports, bound to the export that made them, are answered";
            self.log_refusal(ticket, why).await?;
            return Err(Reply::Refused {
                why: why.to_owned(),
            });
        }
        let challenges = challenges_of(verified.devices());
        let key_id = self.signing_key_id()?;
        let serials: Vec<&str> = challenges.iter().map(|c| c.serial.as_str()).collect();
        let detail = format!("devices {}; key {key_id}", serials.join(", "));
        // Signed before it is recorded: a token that fails to sign leaves the challenge
        // unanswered, to be answered when it works again. What a refusal below drops
        // never left the signer.
        let responses = self.respond(&verified, &key_id).await?;
        let recorded = self
            .ledger
            .record_answer(
                ticket,
                &challenges,
                self.policy.answers_per_hour,
                self.policy.answers_per_serial_per_day,
                &detail,
                now,
            )
            .await
            .map_err(ledger_failed)?;
        if let Err(over) = recorded {
            tracing::warn!(ticket, ?over, "the signer refused to answer");
            let why = match &over {
                super::ledger::Over::AnsweredBefore(t) => {
                    format!("answered before, for ticket {t}")
                }
                super::ledger::Over::PerHour(limit) => format!("{limit} answers in the last hour"),
                super::ledger::Over::PerSerial { serial, limit } => {
                    format!("{limit} answers for device {serial} in the last day")
                }
            };
            self.log_refusal(ticket, &why).await?;
            return Err(Reply::Refused {
                why: match over {
                    super::ledger::Over::AnsweredBefore(_) => {
                        "this export was answered before: the signer answers each challenge once"
                            .to_owned()
                    }
                    super::ledger::Over::PerHour(limit) => format!(
                        "the signer answered {limit} devices in the last hour, its limit (signer_max_answers_per_hour)"
                    ),
                    super::ledger::Over::PerSerial { serial, limit } => format!(
                        "the signer answered device {serial} {limit} times in the last day, its limit"
                    ),
                },
            });
        }
        let signed: Vec<_> = responses.iter().map(|r| r.signed.clone()).collect();
        tracing::info!(ticket, devices = responses.len(), %key_id, "answered");
        Ok(Reply::Answered {
            key_id: key_id.to_string(),
            responses: response::to_xml(&signed),
            keys: responses
                .iter()
                .map(|r| TypedKey {
                    serial: r.serial.to_string(),
                    key: r.key.to_string(),
                })
                .collect(),
        })
    }

    /// The typed keys of responses this signer gave: each response must carry a valid
    /// signature of one of its keys, for a challenge its ledger says it answered.
    async fn recover(&self, export: &str, responses: &str) -> Result<Reply, Reply> {
        let request = read_export(export)?;
        let mut signed = response::from_xml(responses.as_bytes())
            .map_err(|e| failed(format!("the response file: {e}")))?;
        // One response per device of the export, at most.
        signed.dedup_by(|a, b| a.serial == b.serial && a.nonce == b.nonce);
        if signed.len() > request.devices().len() {
            return Err(refused(
                "more responses than the export has devices".to_owned(),
            ));
        }
        let trusted: PublicKeySet = self.keys.public_keys().map_err(failed)?;
        for entry in &signed {
            entry
                .verify(&trusted)
                .map_err(|e| refused(format!("a response not signed by this signer: {e}")))?;
        }
        let challenges: Vec<Challenge> = signed
            .iter()
            .map(|s| Challenge {
                id: challenge_id(s.serial.as_str(), &s.nonce.to_hex()),
                serial: s.serial.to_string(),
            })
            .collect();
        if !self
            .ledger
            .all_answered(&challenges)
            .await
            .map_err(ledger_failed)?
        {
            return Err(refused("a response this signer did not give".to_owned()));
        }
        let master = self.master.clone();
        let recovered = self
            .off_the_runtime(move || recover_responses(request.devices(), &signed, &*master))
            .await?
            .map_err(token_failed)?;
        let serials: Vec<String> = recovered.iter().map(|r| r.serial.to_string()).collect();
        self.ledger
            .log(
                self.clock.now(),
                "recovered",
                &format!("devices {}", serials.join(", ")),
            )
            .await
            .map_err(ledger_failed)?;
        Ok(Reply::Recovered {
            keys: recovered
                .iter()
                .map(|r| TypedKey {
                    serial: r.serial.to_string(),
                    key: r.key.to_string(),
                })
                .collect(),
        })
    }

    async fn log_refusal(&self, ticket: &str, why: &str) -> Result<(), Reply> {
        let now = self.clock.now();
        let minute = now.unix_seconds() / 60;
        let (write, summary) = {
            let mut budget = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
            let mut summary = None;
            if budget.minute != minute {
                if budget.left_out > 0 {
                    summary = Some(budget.left_out);
                }
                *budget = RefusalBudget {
                    minute,
                    ..RefusalBudget::default()
                };
            }
            let write = budget.written < REFUSALS_LOGGED_PER_MINUTE;
            if write {
                budget.written += 1;
            } else {
                budget.left_out += 1;
            }
            (write, summary)
        };
        if let Some(left_out) = summary {
            self.ledger
                .log(
                    now,
                    "refused",
                    &format!(
                        "{left_out} more refusals in the minute before, not written one by one"
                    ),
                )
                .await
                .map_err(ledger_failed)?;
        }
        if write {
            self.ledger
                .log(now, "refused", &format!("{ticket}: {why}"))
                .await
                .map_err(ledger_failed)?;
        }
        Ok(())
    }
}

/// A challenge's id in the ledger: its serial and its random nonce.
fn challenge_id(serial: &str, nonce_hex: &str) -> String {
    format!("{serial}:{nonce_hex}")
}

fn challenges_of(devices: &[DeviceChallenge]) -> Vec<Challenge> {
    devices
        .iter()
        .map(|d| Challenge {
            id: challenge_id(d.identity.serial.as_str(), &d.nonce.to_hex()),
            serial: d.identity.serial.to_string(),
        })
        .collect()
}

fn read_export(export: &str) -> Result<ResetRequest, Reply> {
    export_xml::from_xml(export.as_bytes()).map_err(|e| failed(format!("the export: {e}")))
}

fn failed(error: impl std::fmt::Display) -> Reply {
    Reply::Failed {
        error: error.to_string(),
    }
}

fn refused(why: String) -> Reply {
    Reply::Refused { why }
}

/// The token failed to sign or derive. A PIN it refused while signing in again ends the
/// signer with status 78 (sysexits' EX_CONFIG), which its unit does not restart into:
/// living on would look healthy to the desk while every answer fails, and a restart
/// would try the PIN again, which a real HSM locks after a few tries.
fn token_failed(error: TokenError) -> Reply {
    tracing::error!(%error, "the token did not sign or derive");
    if matches!(error, TokenError::Pin | TokenError::PinAtRisk) {
        tracing::error!(
            "the token refused the PIN while signing in again: the signer stops (status 78); fix pkcs11_pin and unlock it with the token's tools"
        );
        std::process::exit(i32::from(EX_CONFIG));
    }
    failed("the token did not sign or derive: see the signer's log")
}

/// Exit status of a PIN the token refused (sysexits' EX_CONFIG).
pub const EX_CONFIG: u8 = 78;

fn ledger_failed(error: LedgerError) -> Reply {
    tracing::error!(%error, "the signer's database failed");
    failed("the signer's database failed: see its log")
}
