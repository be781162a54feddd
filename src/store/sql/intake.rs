//! Public intake's shared state: the requests counted against limits, the jobs' leases
//! and the blobs tickets name.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Executor};

use super::{Param, SqlStore, Value, db};
use crate::domain::Timestamp;
use crate::store::dialect::{Dialect, RowsAffected};
use crate::store::rows;
use crate::store::write_lane::Abandoned;
use crate::store::{IntakeHit, IntakeReservation, IntakeStore, StoreError, StoreResult, TicketId};

/// A lock namespace of its own per intake bucket ("RDIA", "RDIS").
fn intake_lock_class(bucket: crate::store::IntakeBucket) -> i32 {
    match bucket {
        crate::store::IntakeBucket::Address => 0x5244_4941,
        crate::store::IntakeBucket::Serial => 0x5244_4953,
    }
}

#[async_trait]
impl<D: Dialect> IntakeStore for SqlStore<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    for<'q> i64: Value<'q, D>,
    for<'q> String: Value<'q, D>,
    for<'q> bool: Value<'q, D>,
    for<'q> Vec<u8>: Value<'q, D>,
    for<'q> &'q str: Param<'q, D>,
    for<'q> &'q [u8]: Param<'q, D>,
    for<'q> Option<i64>: Param<'q, D>,
    for<'q> Option<String>: Param<'q, D>,
    for<'q> Option<&'q str>: Param<'q, D>,
    for<'q> Option<&'q [u8]>: Param<'q, D>,
    usize: ColumnIndex<D::Row>,
    for<'r> &'r str: ColumnIndex<D::Row>,
{
    async fn reserve_intake(
        &self,
        hits: &[IntakeHit<'_>],
        at: Timestamp,
        window_secs: i64,
    ) -> StoreResult<IntakeReservation> {
        if hits.is_empty() {
            return Ok(IntakeReservation::Counted);
        }
        // Locked in one order (kind, then key), so two requests naming the same serials
        // in another order never wait on each other in a circle.
        let mut ordered: Vec<OwnedHit> = hits
            .iter()
            .map(|hit| OwnedHit {
                bucket: hit.bucket,
                key: hit.key.to_owned(),
                limit: hit.limit,
            })
            .collect();
        ordered.sort_by(|a, b| (a.bucket, &a.key).cmp(&(b.bucket, &b.key)));
        ordered.dedup_by(|a, b| (a.bucket, &a.key) == (b.bucket, &b.key));
        // On the write lane: every public upload is counted. The count of a request
        // whose client went away before its turn is not made (abandoned requests queue
        // no work). Counted in every bucket, or in none.
        self.in_write_transaction(Abandoned::Stop, move |tx| {
            Box::pin(async move {
                let now = at.unix_seconds();
                let since = now - window_secs;
                for hit in &ordered {
                    D::lock_bucket(tx, intake_lock_class(hit.bucket), &hit.key).await?;
                }
                for hit in &ordered {
                    let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
                        "SELECT COUNT(*), MIN(at) FROM intake_hits WHERE kind = $1 AND key = $2 AND at > $3",
                    )
                    .bind(hit.bucket.kind())
                    .bind(&hit.key)
                    .bind(since)
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(db)?;
                    if count >= hit.limit {
                        return Ok(IntakeReservation::Refused {
                            key: hit.key.clone(),
                            oldest: oldest.map(rows::time).transpose()?,
                        });
                    }
                }
                for hit in &ordered {
                    sqlx::query("INSERT INTO intake_hits (kind, key, at) VALUES ($1, $2, $3)")
                        .bind(hit.bucket.kind())
                        .bind(&hit.key)
                        .bind(now)
                        .execute(&mut **tx)
                        .await
                        .map_err(db)?;
                }
                // A few expired rows at a time, whichever bucket they were in: the table holds
                // about an hour of requests, never the desk's whole history.
                sqlx::query(D::PRUNE_INTAKE_HITS)
                    .bind(since)
                    .execute(&mut **tx)
                    .await
                    .map_err(db)?;
                Ok(IntakeReservation::Counted)
            })
        })
        .await
    }

    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<bool> {
        // One statement: two replicas at once both try it, the database lets one win.
        let taken = sqlx::query(
            "INSERT INTO job_leases (name, holder, until) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
             WHERE job_leases.until <= $4 OR job_leases.holder = excluded.holder",
        )
        .bind(name)
        .bind(holder)
        .bind(until.unix_seconds())
        .bind(now.unix_seconds())
        .execute(self.writer())
        .await
        .map_err(db)?
        .rows_affected();
        Ok(taken == 1)
    }

    async fn blobs_referenced(&self, names: &[String]) -> StoreResult<Vec<String>> {
        let mut owned = Vec::new();
        for batch in names.chunks(crate::store::BLOBS_PER_QUERY) {
            // Only numbered placeholders are formatted in, never a name; each is used six
            // times. A replaced photo is kept with its ticket (earlier_photos); a preview
            // counts while its photo is the ticket's current one, as the page shows a
            // replaced photo as it was sent.
            let list = (1..=batch.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT export_blob FROM tickets WHERE export_blob IN ({list})
                 UNION SELECT label_blob FROM tickets WHERE label_blob IN ({list})
                 UNION SELECT j.preview_blob FROM evidence_jobs j
                       JOIN tickets t ON t.id = j.ticket_id AND t.label_blob = j.label_blob
                       WHERE j.preview_blob IN ({list})
                 UNION SELECT j.thumbnail_blob FROM evidence_jobs j
                       JOIN tickets t ON t.id = j.ticket_id AND t.label_blob = j.label_blob
                       WHERE j.thumbnail_blob IN ({list})
                 UNION SELECT blob FROM earlier_photos WHERE blob IN ({list})
                 UNION SELECT blob FROM inbound_kept WHERE blob IN ({list})"
            );
            let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
            for name in batch {
                query = query.bind(name);
            }
            // From the primary: a ticket committed a moment ago must count.
            let found: Vec<String> = query.fetch_all(self.writer()).await.map_err(db)?;
            owned.extend(found);
        }
        Ok(owned)
    }

    async fn label_blob_of(&self, ticket_id: TicketId) -> StoreResult<String> {
        sqlx::query_scalar("SELECT label_blob FROM tickets WHERE id = $1")
            .bind(ticket_id)
            .fetch_optional(self.writer())
            .await
            .map_err(db)?
            .ok_or(StoreError::NotFound)
    }
}

/// A hit with its key owned, to take onto the write lane.
struct OwnedHit {
    bucket: crate::store::IntakeBucket,
    key: String,
    limit: i64,
}
