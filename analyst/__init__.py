"""`calls`, the analysts' command: list, read, export and summarize the calls the agent took.

It reads what the product writes (`callcore.store` for call records through the by-day index, `callcore.transcripts`
for transcripts, analyses and recordings) from AWS, or from any endpoint in `AWS_ENDPOINT_URL` (a local moto server).

| module | job |
| --- | --- |
| `cli` | the commands, their options and the one place a user error becomes exit code 2 |
| `source` | where the data is (flags, environment, a stack's outputs) and AWS errors as one-line messages |
| `queries` | date ranges, filters, paging the by-day index, rows per call and per turn, daily figures (DuckDB) |
| `render` | tables and the conversation as a person reads it (rich) |
| `export` | CSV, JSON Lines and Parquet writers (pyarrow) |
| `plot` | the daily figures as a PNG (matplotlib) |
| `athena_sql` | the saved Athena queries run by DuckDB over a copy of the archive (the documented translation) |
"""
