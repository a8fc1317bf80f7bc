//! Schedule management on the engine: the store operations plus what a store cannot do (waking the cron
//! enqueuer when a schedule changes, waking claimers for a triggered run), and the start-up sync of the
//! schedules defined in the configuration file.

use std::collections::BTreeSet;

use offload_core::JobState;
use offload_core::cron::{Schedule, ScheduleRecord, ScheduleSource};
use offload_store::{
    ScheduleDeleteParams, ScheduleGetParams, ScheduleListParams, ScheduleSetPausedParams,
    ScheduleTriggerParams, ScheduleTriggered, ScheduleUpsertParams, ScheduleUpserted, StoreError,
};

use super::Engine;
use crate::error::Result;

/// What [`Engine::sync_file_schedules`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSchedules {
    /// Schedules created from the file.
    pub created: Vec<String>,
    /// Schedules replaced from the file.
    pub replaced: Vec<String>,
    /// File-defined schedules deleted because the file no longer has them.
    pub deleted: Vec<String>,
    /// Schedules the file defines exactly as stored: left alone (nothing written).
    pub unchanged: Vec<String>,
}

impl Engine {
    /// Creates or replaces a schedule, and wakes the enqueuer so a new next fire time is honoured at once.
    pub async fn put_schedule(
        &self,
        schedule: Schedule,
        source: ScheduleSource,
    ) -> Result<ScheduleUpserted> {
        let upserted = self
            .inner
            .store
            .schedule_upsert(ScheduleUpsertParams { schedule, source })
            .await?;
        self.inner.wakers.cron.notify_one();
        Ok(upserted)
    }

    /// One schedule with up to `recent_ticks` recent ticks.
    pub async fn get_schedule(
        &self,
        name: &str,
        recent_ticks: u32,
    ) -> Result<Option<ScheduleRecord>> {
        let p = ScheduleGetParams {
            name: name.to_owned(),
            recent_ticks,
        };
        Ok(self.inner.store.schedule_get(p).await?)
    }

    /// A page of schedules in name order.
    pub async fn list_schedules(&self, p: ScheduleListParams) -> Result<Vec<ScheduleRecord>> {
        Ok(self.inner.store.schedule_list(p).await?)
    }

    /// Deletes a schedule (its jobs stay).
    pub async fn delete_schedule(&self, name: &str) -> Result<()> {
        let p = ScheduleDeleteParams {
            name: name.to_owned(),
        };
        Ok(self.inner.store.schedule_delete(p).await?)
    }

    /// Pauses or resumes a schedule; a resume wakes the enqueuer, which catches up per the schedule's policy.
    pub async fn set_schedule_paused(&self, name: &str, paused: bool) -> Result<ScheduleRecord> {
        let p = ScheduleSetPausedParams {
            name: name.to_owned(),
            paused,
        };
        let record = self.inner.store.schedule_set_paused(p).await?;
        self.inner.wakers.cron.notify_one();
        Ok(record)
    }

    /// Runs a schedule's job now (recorded as a manual tick), whatever its overlap policy and pause state.
    pub async fn trigger_schedule(&self, name: &str) -> Result<ScheduleTriggered> {
        let record = self
            .get_schedule(name, 0)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("schedule {name}")))?;
        let job = record
            .schedule
            .job
            .new_job(self.now())
            .map_err(|e| StoreError::Internal(format!("schedule {name} template: {e}")))?;
        let triggered = self
            .inner
            .store
            .schedule_trigger(ScheduleTriggerParams {
                name: name.to_owned(),
                job,
            })
            .await?;
        if triggered.inserted.state == JobState::Available {
            self.inner.wakers.queues.wake(&triggered.queue);
            self.inner.wakers.push.notify_one();
        }
        Ok(triggered)
    }

    /// Makes the file-defined schedules match `schedules` (the configuration file's, already validated):
    /// each is created or replaced with source `file` unless it is stored exactly so already (a restart
    /// with an unchanged file writes nothing), and every `file` schedule the list no longer names is deleted.
    /// Schedules created through the API are never touched.
    pub async fn sync_file_schedules(&self, schedules: Vec<Schedule>) -> Result<FileSchedules> {
        let mut report = FileSchedules::default();
        let names: BTreeSet<String> = schedules.iter().map(|s| s.name.clone()).collect();
        for schedule in schedules {
            let name = schedule.name.clone();
            let stored = self.get_schedule(&name, 0).await?;
            if stored.is_some_and(|r| stored_as(&r, &schedule)) {
                report.unchanged.push(name);
                continue;
            }
            let upserted = self.put_schedule(schedule, ScheduleSource::File).await?;
            if upserted.created {
                report.created.push(name);
            } else {
                report.replaced.push(name);
            }
        }
        let mut after: Option<String> = None;
        loop {
            let page = self
                .list_schedules(ScheduleListParams {
                    after: after.clone(),
                    source: Some(ScheduleSource::File),
                    limit: 500,
                })
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.schedule.name.clone());
            for record in &page {
                if !names.contains(&record.schedule.name) {
                    self.delete_schedule(&record.schedule.name).await?;
                    report.deleted.push(record.schedule.name.clone());
                }
            }
        }
        Ok(report)
    }
}

/// True when `record` is a file schedule that already is `schedule` (the pause state only counts when the
/// file sets one).
fn stored_as(record: &ScheduleRecord, schedule: &Schedule) -> bool {
    let pause_kept = schedule.paused.is_none_or(|p| p == record.paused);
    let definition = Schedule {
        paused: schedule.paused,
        ..record.schedule.clone()
    };
    record.source == ScheduleSource::File && pause_kept && definition == *schedule
}
