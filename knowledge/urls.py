from django.urls import path

from knowledge import views

urlpatterns = [
    path("knowledge/", views.knowledge_list, name="knowledge_list"),
    path("knowledge/<int:pk>/", views.knowledge_detail, name="knowledge_detail"),
    path("knowledge/<int:pk>/documents/", views.knowledge_documents, name="knowledge_documents"),
    path("knowledge/<int:pk>/add/", views.knowledge_document_add, name="knowledge_document_add"),
    path("knowledge/<int:pk>/qa/", views.knowledge_qa_add, name="knowledge_qa_add"),
    path("knowledge/<int:pk>/search/", views.knowledge_search, name="knowledge_search"),
    path("knowledge/documents/<int:pk>/", views.knowledge_document_detail, name="knowledge_document_detail"),
    path("knowledge/qa/<int:pk>/", views.knowledge_qa_edit, name="knowledge_qa_edit"),
]
