"""The Qlik email policy pack of this repository: ``pulumi preview --policy-pack policies``.

It serves the packaged pack (``qlik_email_resource/policy_pack``), which users get
with ``pip install``, so the rules exist once. The CLI runs this file with the
Python that has ``qlik_email_resource`` installed (PulumiPolicy.yaml names no
virtualenv): the one the program and its dynamic provider already need.
"""

from qlik_email_resource.policy_pack import serve

serve()
