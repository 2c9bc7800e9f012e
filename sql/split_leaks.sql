-- split_leaks: one row of violation counts for the user_temporal_split table (all zero = sound).
-- inputs: user_temporal_split (one row per rating)
-- params: none
with per_user as (
    select
        user_id,
        max(ts) filter (where split = 'train') as last_train_ts
    from user_temporal_split
    group by user_id
),

test_older_than_train as (
    select count(*) as n
    from user_temporal_split as s
    inner join per_user as u on s.user_id = u.user_id
    where s.split = 'test' and s.ts < u.last_train_ts
),

-- consecutive positions must follow (ts, place_id): the tie-break used everywhere
out_of_order as (
    select count(*) as n
    from (
        select
            ts, place_id,
            lead(ts) over w as next_ts,
            lead(place_id) over w as next_place_id
        from user_temporal_split
        window w as (partition by user_id order by pos)
    )
    where next_ts < ts or (next_ts = ts and next_place_id <= place_id)
),

-- the j-th of n history items must be exactly the rating at position pos - n + j - 1
history_items as (
    select
        user_id, pos, ts, place_id,
        unnest(hist_place_ids) as hist_place_id,
        unnest(hist_ratings) as hist_rating,
        generate_subscripts(hist_place_ids, 1) as j,
        len(hist_place_ids) as n_hist
    from user_temporal_split
),

history_lookahead as (
    select count(*) as n
    from history_items as h
    left join user_temporal_split as s
        on s.user_id = h.user_id and s.pos = h.pos - h.n_hist + h.j - 1
    where s.user_id is null
        or s.place_id <> h.hist_place_id
        or s.rating <> h.hist_rating
        or s.pos >= h.pos
        or s.ts > h.ts
),

mixed_splits as (
    select count(*) as n
    from user_temporal_split
    where split not in ('train', 'test') or split is null
),

final as (
    select
        (select n from test_older_than_train) as test_older_than_train,
        (select n from out_of_order) as out_of_order,
        (select n from history_lookahead) as history_lookahead,
        (select n from mixed_splits) as bad_split_values,
        (select count(*) from user_temporal_split) as n_rows
)

select * from final
