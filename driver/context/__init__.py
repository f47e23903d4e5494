"""SparkConf, SparkContext (and, with streaming, StreamingContext)."""
