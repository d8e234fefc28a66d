-- -*- mode: sql; sql-product: postgres; -*-
-- Copyright ⓒ 2024-2025 Peter Morgan <peter.james.morgan@gmail.com>
--
-- Licensed under the Apache License, Version 2.0 (the "License");
-- you may not use this file except in compliance with the License.
-- You may obtain a copy of the License at
--
-- http://www.apache.org/licenses/LICENSE-2.0
--
-- Unless required by applicable law or agreed to in writing, software
-- distributed under the License is distributed on an "AS IS" BASIS,
-- WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
-- See the License for the specific language governing permissions and
-- limitations under the License.

-- Patched for reco (see third_party/README.md in reco): the upstream statement
-- compared every record's timestamp, a full scan of the log that holds the write lock and
-- the broker's only storage lane (22 s at 10M records). This one reads at most the oldest
-- 10,000 records of a partition per pass, and only of partitions whose oldest record has
-- expired; it deletes the expired prefix of those, stopping at the first record still
-- inside retention as Kafka's log start offset does (no holes in the log).

with

deletion as (
    select tp.id as topition
    from topition tp
    join topic t on t.id = tp.topic
    join cluster c on t.cluster = c.id
    join topic_configuration tc on tc.topic = t.id
    where c.name = $1
    and tc.name = 'cleanup.policy'
    and tc.value like '%delete%'
),

retention as (
    select tp.id as topition, tc.value
    from topition tp
    join topic t on t.id = tp.topic
    join cluster c on t.cluster = c.id
    left join topic_configuration tc on tc.topic = t.id
    where c.name = $1
    and tc.name = 'retention.ms'
),

cutoff as (
    select del.topition as topition, $2 - coalesce(cast(ret.value as integer), $3) as cutoff
    from deletion del
    left join retention ret on ret.topition = del.topition
),

-- partitions whose oldest record has expired: the only ones a pass reads
horizon as (
    select topition, cutoff
    from cutoff
    where (select o.timestamp from record o where o.topition = cutoff.topition order by o.offset_id limit 1) < cutoff
),

-- their oldest 10,000 records: the most one pass reads and deletes per partition
head as (
    select r.topition as topition, r.offset_id as offset_id, r.timestamp as timestamp, h.cutoff as cutoff
    from horizon h
    join record r on r.topition = h.topition
    where r.offset_id < coalesce(
        (select o.offset_id from record o where o.topition = h.topition order by o.offset_id limit 1 offset 10000),
        9223372036854775807)
),

-- the first record of the head still inside retention: the log starts there
keep as (
    select topition, min(offset_id) as offset_id
    from head
    where timestamp >= cutoff
    group by topition
),

ancient as (
    select head.topition, head.offset_id
    from head
    left join keep on keep.topition = head.topition
    where keep.offset_id is null or head.offset_id < keep.offset_id
)

delete from record
where (record.topition, record.offset_id) in (select * from ancient);
