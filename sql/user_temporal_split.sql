-- user_temporal_split: one row per rating, tagged 'train' or 'test', with its history.
-- inputs: mountain_view_ratings (one row per rating)
-- params: $test_frac   newest share of each user's ratings that goes to test (0.2)
--         $valid_frac  newest share of each user's train ratings flagged `valid`, for
--                      early stopping and model selection; never the test rows (0.1)
--         $hist_len    places kept in each row's history (the most recent ones)
-- Time order is (ts, place_id) everywhere, so ties break the same way on every rerun.
-- A row's history holds only ratings strictly before it in that order: no look-ahead.
with ratings as (
    select user_id, place_id, rating, ts
    from mountain_view_ratings
),

numbered as (
    select
        *,
        row_number() over (partition by user_id order by ts, place_id) as pos,
        count(*) over (partition by user_id) as n_user
    from ratings
),

sized as (
    select
        *,
        greatest(1, floor(n_user * (1 - $test_frac)))::bigint as n_train
    from numbered
),

tagged as (
    select
        *,
        if(pos <= n_train, 'train', 'test') as split,
        -- at least one validation row per user when valid_frac > 0, never all train rows
        pos <= n_train and pos > n_train - least(n_train - 1, ceil(n_train * $valid_frac)) as valid
    from sized
),

with_history as (
    select
        *,
        list(place_id order by pos) over recent as hist_place_ids,
        list(rating order by pos) over recent as hist_ratings
    from tagged
    window recent as (
        partition by user_id order by pos
        rows between $hist_len preceding and 1 preceding
    )
),

final as (
    select
        user_id,
        place_id,
        rating,
        ts,
        pos,
        split,
        valid,
        coalesce(hist_place_ids, []::varchar[]) as hist_place_ids,
        coalesce(hist_ratings, []::integer[]) as hist_ratings
    from with_history
)

select * from final
order by user_id, pos
