//! Client methods for cron schedules (`/v1/schedules`).

use offload_core::cron::{ListSchedulesQuery, ScheduleInfo, ScheduleList, ScheduleSpec, Triggered};
use reqwest::{Method, StatusCode};

use crate::client::{Client, decode};
use crate::error::Result;

/// The answer of [`Client::put_schedule`].
#[derive(Debug, Clone)]
pub struct PutSchedule {
    /// The schedule afterwards, with its next fire times.
    pub schedule: ScheduleInfo,
    /// True when it was created (HTTP 201), false when an existing one was replaced (200).
    pub created: bool,
}

impl Client {
    /// `PUT /v1/schedules/{name}`: creates the schedule or replaces the one with this name. An invalid
    /// expression, time zone, template or jitter fails with code `invalid_field` naming the field.
    pub async fn put_schedule(&self, name: &str, spec: &ScheduleSpec) -> Result<PutSchedule> {
        let rb = self
            .request(Method::PUT, &["v1", "schedules", name])?
            .json(spec);
        let (status, body) = self.send(rb).await?;
        Ok(PutSchedule {
            schedule: decode(status, &body)?,
            created: status == StatusCode::CREATED,
        })
    }

    /// `GET /v1/schedules`: one page of schedules in name order. Pass the page's `next_cursor` as `cursor`
    /// for the next.
    pub async fn list_schedules(&self, query: &ListSchedulesQuery) -> Result<ScheduleList> {
        self.call(
            self.request(Method::GET, &["v1", "schedules"])?
                .query(query),
        )
        .await
    }

    /// `GET /v1/schedules/{name}`: the schedule with its next fire times and recent ticks.
    pub async fn get_schedule(&self, name: &str) -> Result<ScheduleInfo> {
        self.call(self.request(Method::GET, &["v1", "schedules", name])?)
            .await
    }

    /// `DELETE /v1/schedules/{name}`: removes the schedule (its jobs stay).
    pub async fn delete_schedule(&self, name: &str) -> Result<()> {
        self.send(self.request(Method::DELETE, &["v1", "schedules", name])?)
            .await
            .map(drop)
    }

    /// `POST /v1/schedules/{name}/pause`: the schedule fires nothing until resumed.
    pub async fn pause_schedule(&self, name: &str) -> Result<ScheduleInfo> {
        self.call(self.request(Method::POST, &["v1", "schedules", name, "pause"])?)
            .await
    }

    /// `POST /v1/schedules/{name}/resume`: fires again; ticks due while paused follow its catch-up policy.
    pub async fn resume_schedule(&self, name: &str) -> Result<ScheduleInfo> {
        self.call(self.request(Method::POST, &["v1", "schedules", name, "resume"])?)
            .await
    }

    /// `POST /v1/schedules/{name}/trigger`: creates the schedule's job now.
    pub async fn trigger_schedule(&self, name: &str) -> Result<Triggered> {
        self.call(self.request(Method::POST, &["v1", "schedules", name, "trigger"])?)
            .await
    }
}
