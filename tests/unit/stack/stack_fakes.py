"""Test doubles for the stand-in app's unit tests."""


class FakeRedis:
    """The few hash commands MetricStore uses."""

    def __init__(self):
        self.data = {}
        self.fail = False

    def _check(self):
        if self.fail:
            raise ConnectionError("redis down")

    def hincrbyfloat(self, key, field, amount):
        self._check()
        bucket = self.data.setdefault(key, {})
        bucket[field] = bucket.get(field, 0.0) + amount
        return bucket[field]

    def hgetall(self, key):
        self._check()
        return {k.encode(): str(v).encode() for k, v in self.data.get(key, {}).items()}

    def delete(self, *keys):
        for key in keys:
            self.data.pop(key, None)

    def pipeline(self):
        return FakePipeline(self)


class FakePipeline:
    def __init__(self, redis):
        self.redis, self.calls = redis, []

    def __getattr__(self, name):
        def call(*args):
            self.calls.append((name, args))
            return self
        return call

    def execute(self):
        return [getattr(self.redis, name)(*args) for name, args in self.calls]
