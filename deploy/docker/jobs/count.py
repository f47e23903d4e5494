"""A first job for a fresh cluster: counts words over the executors and prints them."""
from operator import add

from sluicegate.driver import SparkContext

sc = SparkContext(appName="count")
words = sc.parallelize(["sluice gate", "river lot", "gate batch"] * 1000, 8)
counts = words.flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(add)
for word, count in sorted(counts.collect()):
    print(word, count)
sc.stop()
