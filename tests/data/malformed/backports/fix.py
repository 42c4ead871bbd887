def method(self, users):
    return True
