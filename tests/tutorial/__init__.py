"""The course's own client and API (make tutorial, docs/tutorial.md).

course_client.py is the course's ``logistika_integratsioon/test_integration.py`` byte for byte:
the copy of ``../shared/seed/test_integration.py`` that the suite runs (test_course_client.py
checks that the two still agree wherever the seed is beside the checkout).
"""
