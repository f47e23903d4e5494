"""A first end-to-end check of the batch engine on real executor processes."""
from operator import add


def test_reduce_by_key_on_three_processes(sc):
    result = sc.parallelize(range(1000), 4).map(lambda x: (x % 10, 1)).reduceByKey(add).collect()
    assert sorted(result) == [(k, 100) for k in range(10)]


def test_join(sc):
    a = sc.parallelize([(1, "a"), (2, "b"), (3, "c")])
    b = sc.parallelize([(1, "x"), (3, "y"), (3, "z")])
    assert sorted(a.join(b).collect()) == [(1, ("a", "x")), (3, ("c", "y")), (3, ("c", "z"))]
