"""Make the collection importable as ansible_collections.korrigo.ops and the stand-in app as korrigo_stack."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, '.cache', 'collections')
LINK = os.path.join(COLLECTIONS, 'ansible_collections', 'korrigo', 'ops')

if not os.path.lexists(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    os.symlink('../../../..', LINK)
for path in (COLLECTIONS, os.path.join(ROOT, 'tests', 'stack')):
    if path not in sys.path:
        sys.path.insert(0, path)
