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
use crate::crypto::pkcs11::TokenSigningKey;
use crate::crypto::{KeyId, KeyStore, KeyStoreError, MasterSecret, PublicKeySet};
use crate::domain::TicketNumber;
use crate::protocol::challenge::VerifiedResetRequest;
use crate::protocol::{
    DeviceChallenge, DeviceResponse, PROTOCOL_V2, ResetRequest, export_xml, recover_responses,
    respond, respond_with, response,
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
    /// A key in a PKCS#11 token, made there, signing there.
    Token(TokenSigningKey),
}

pub struct Service {
    master: MasterSecret,
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
        signing: SigningKeySource,
        ledger: Ledger,
        policy: Policy,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, KeyStoreError> {
        Ok(Self {
            master: keys.master_secret()?,
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
            Request::CheckExport { export } => self.check(&export).map(|_| Reply::Checked),
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

    fn signing_key_id(&self) -> Result<KeyId, Reply> {
        match &self.signing {
            SigningKeySource::KeyFiles => {
                Ok(self.keys.active_signing_key().map_err(failed)?.id().clone())
            }
            SigningKeySource::Token(key) => Ok(key.id().clone()),
        }
    }

    /// Answers a checked export with the key that signs now.
    fn respond(&self, verified: &VerifiedResetRequest) -> Result<Vec<DeviceResponse>, Reply> {
        match &self.signing {
            SigningKeySource::KeyFiles => {
                let key = self.keys.active_signing_key().map_err(failed)?;
                Ok(respond(verified, &self.master, &key))
            }
            SigningKeySource::Token(key) => {
                respond_with(verified, &self.master, key.id(), |bytes| key.sign(bytes)).map_err(
                    |e| {
                        tracing::error!(error = %e, "the token did not sign");
                        failed("the signing key's token did not sign: see the signer's log")
                    },
                )
            }
        }
    }

    /// Reads and checks an export by the signer's own clock.
    fn check(&self, export: &str) -> Result<VerifiedResetRequest, Reply> {
        let request = read_export(export)?;
        request
            .verify(&self.master, self.clock.now(), self.policy.max_skew_secs)
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
        let verified = self.check(export)?;
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
        let responses = self.respond(&verified)?;
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
        let recovered = recover_responses(request.devices(), &signed, &self.master);
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

fn ledger_failed(error: LedgerError) -> Reply {
    tracing::error!(%error, "the signer's database failed");
    failed("the signer's database failed: see its log")
}
