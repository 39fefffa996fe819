"""Read a ``.pt2`` file (``torch.export.save``) without letting the file run code.

``torch.export.load`` trusts the file it reads. In torch 2.13 it unpickles, with
``weights_only=False``, every weight or tensor constant marked ``use_pickle``
(torch/export/pt2_archive/_package.py, ``_load_state_dict`` and ``_load_constants``),
``pickle.loads`` opaque constants and ``torch._C._pickle_load_obj`` torchbind objects
(``_load_constants``), retries any failed ``weights_only=True`` load with
``weights_only=False`` (torch/_export/serde/serialize.py, ``deserialize_torch_artifact``,
which also reads the archive's sample inputs), and falls back to that reader for the
legacy layout when anything fails (torch/export/__init__.py, ``load``). Besides the pickles,
the program's JSON reaches ``sympy.sympify`` (an ``eval``) through every symbolic shape
expression, names any ``torch.*`` callable as a node target, and carries guard code that
``ExportedProgram.module()`` ``exec``s.

So without ``trust`` this package reads the archive itself, with ``zipfile`` and ``json``:
it checks the program (operators only from ``torch.ops``, shape expressions from a short
list of sympy names, plain names), builds the tensors from their raw bytes, reads a
pickled tensor only with ``torch.load(weights_only=True)``, never opens the sample inputs,
and refuses, before it unpickles anything, pickled opaque or torchbind constants,
AOTInductor code and the legacy layout. Only then does torch's deserializer rebuild the
graph from the checked JSON and the tensors already built, and the module is made with
``check_guards=False`` so that no guard code from the file is ``exec``'d.

- archive.py: the zip itself, its records, and the records refused before anything is read
- program.py: the program's JSON checked for anything that reaches code, then rebuilt
- tensors.py: weights and constants built from their raw bytes (weights_only pickles at most)
- reader.py: ``read_pt2``, trusted or not, and the inference module it returns
"""

from .archive import is_pt2 as is_pt2
from .reader import read_pt2 as read_pt2
