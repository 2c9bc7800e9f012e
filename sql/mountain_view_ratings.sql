-- mountain_view_ratings: one row per rating kept by the Mountain View filter.
-- inputs: raw_reviews (one row per review), raw_places (one row per place)
-- params: $zip_min, $zip_max  inclusive zip range (94035-94043 by default)
--         $mode               'users': every rating of every user with at least one rating
--                             of a place in the range (how the paper's 7.5M ratings / 47k
--                             users / 134k places fit); 'places': only ratings of places in it
--         $min_ratings        users with fewer kept ratings are dropped
with places as (
    select
        place_id,
        -- the zip is the last 5-digit group of the address, ZIP+4 allowed;
        -- a null or zip-less address gives null and never matches
        try_cast(regexp_extract(address, '(\d{5})(?:-\d{4})?\s*$', 1) as integer) as zip
    from raw_places
),

in_range as (
    select distinct place_id
    from places
    where zip between $zip_min and $zip_max
),

ratings as (
    select user_id, place_id, rating, ts
    from raw_reviews
),

range_users as (
    select distinct ratings.user_id
    from ratings
    inner join in_range on ratings.place_id = in_range.place_id
),

kept as (
    select ratings.*
    from ratings
    where
        ($mode = 'users' and ratings.user_id in (select user_id from range_users))
        or ($mode = 'places' and ratings.place_id in (select place_id from in_range))
),

counted as (
    select
        *,
        count(*) over (partition by user_id) as n_user
    from kept
),

final as (
    select user_id, place_id, rating, ts
    from counted
    where n_user >= $min_ratings
)

select * from final
order by user_id, ts, place_id
